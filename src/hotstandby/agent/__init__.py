"""The shell: an asyncio agent that feeds the core events and carries out its commands."""
