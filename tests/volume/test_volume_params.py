"""The volume resource's parameters, its registration, and what `check` finds on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from hotstandby.agent.resources import KINDS, VolumeResource, build_resources, validate
from hotstandby.agent.resources.volume import (
    VolumeParams,
    find_host_risks,
    parse_mountinfo,
    parse_params,
    top_mount,
)
from hotstandby.config import load
from hotstandby.config.reader import freeze
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Node,
    Resource,
    ResourceKind,
)

#: A valid minimal resource, to break one key at a time.
OK = {"device": "/dev/sdb1", "mountpoint": "/srv/data", "fstype": "ext4"}

EXAMPLES = Path(__file__).parents[2] / "src" / "hotstandby" / "examples"


def parse(**params: Any) -> VolumeParams:
    """Parse params of a resource called data on node a, frozen as the loader freezes them."""
    return parse_params("data", freeze(params), "a")


def parse_for(stop_timeout: float, **params: Any) -> VolumeParams:
    """Parse params of a resource with that stop_timeout."""
    return parse_params("data", freeze(params), "a", stop_timeout)


def test_defaults() -> None:
    assert parse(**OK) == VolumeParams(
        device="/dev/sdb1",
        mountpoint="/srv/data",
        fstype="ext4",
        options=(),
        fsck=True,
        kill_grace=2.0,
        probe=".hotstandby-probe",
    )


def test_every_key() -> None:
    p = parse(
        **OK,
        options=["noatime", "data=ordered"],
        fsck=False,
        kill_grace="500ms",
        probe="probe-file",
    )
    assert p.options == ("noatime", "data=ordered")
    assert (p.fsck, p.kill_grace, p.probe) == (False, 0.5, "probe-file")


def test_options_as_one_string() -> None:
    assert parse(**OK, options="noatime,errors=remount-ro").options == (
        "noatime",
        "errors=remount-ro",
    )


def test_device_per_node() -> None:
    raw = freeze({**OK, "device": {"a": "/dev/sdb1", "b": "/dev/sdc1"}})
    assert parse_params("data", raw, "a").device == "/dev/sdb1"
    assert parse_params("data", raw, "b").device == "/dev/sdc1"
    with pytest.raises(ValueError, match=r"resource 'data': key 'device': no entry for node 'c'"):
        parse_params("data", raw, "c")
    bad = freeze({**OK, "device": {"a": "sdb1"}})
    with pytest.raises(ValueError, match=r"key 'device': expected .* \(at device\.a\)"):
        parse_params("data", bad, "a")


def test_kill_grace_must_fit_twice_in_the_stop_timeout() -> None:
    assert parse_for(5.0, **OK, kill_grace="2s").kill_grace == 2.0
    with pytest.raises(ValueError, match=r"key 'kill_grace': 3s is too long .* at least 6.5s"):
        parse_for(5.0, **OK, kill_grace="3s")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mountpoint": "/m", "fstype": "ext4"}, "key 'device' is required"),
        ({**OK, "device": "sdb1"}, "key 'device': expected an absolute device path"),
        ({**OK, "device": 3}, "key 'device': .*found the number 3"),
        ({"device": "/dev/sdb1", "fstype": "ext4"}, "key 'mountpoint' is required"),
        ({**OK, "mountpoint": "srv"}, "key 'mountpoint': expected an absolute path"),
        ({**OK, "mountpoint": "/"}, "key 'mountpoint': expected a directory other than"),
        ({**OK, "mountpoint": "/srv/data/"}, "key 'mountpoint'.*trailing slash"),
        ({**OK, "mountpoint": "/srv/../etc"}, "key 'mountpoint'"),
        ({"device": "/dev/sdb1", "mountpoint": "/m"}, "key 'fstype' is required"),
        ({**OK, "fstype": "auto"}, "key 'fstype': expected a file system type"),
        ({**OK, "fstype": "ext 4"}, "key 'fstype'"),
        ({**OK, "fstype": ["ext4"]}, "key 'fstype'.*found an array"),
        ({**OK, "options": "ro,noatime"}, "key 'options': 'ro' is not allowed: the monitor"),
        ({**OK, "options": ["bind"]}, "key 'options': 'bind' is not allowed"),
        ({**OK, "options": ["no atime"]}, r"key 'options'.*\(at options\[0\]\)"),
        ({**OK, "options": "a,,b"}, "key 'options': expected a mount option"),
        ({**OK, "options": 3}, "key 'options': expected mount options"),
        ({**OK, "fsck": "yes"}, "key 'fsck': expected true or false"),
        ({**OK, "kill_grace": "soon"}, "key 'kill_grace'"),
        ({**OK, "kill_grace": 0}, "key 'kill_grace'"),
        ({**OK, "probe": "a/b"}, "key 'probe': expected a plain file name"),
        ({**OK, "probe": ".."}, "key 'probe'"),
        ({**OK, "probe": ""}, "key 'probe'"),
        ({**OK, "mount_point": "/x"}, "key 'mount_point': unknown"),
    ],
)  # fmt: skip
def test_errors_name_the_resource_and_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse(**params)
    assert str(caught.value).startswith("resource 'data': ")


def cluster_with(*resources: Resource) -> Cluster:
    """A two-node cluster holding resources."""
    return Cluster(
        name="t",
        secret_file="/dev/null",
        nodes=(Node("a"), Node("b")),
        links=(),
        resources=resources,
        arbitration=Arbitration(ArbitrationMode.NONE),
    )


def test_registered_and_built() -> None:
    assert ResourceKind.VOLUME in KINDS
    resource = Resource("data", ResourceKind.VOLUME, freeze(OK), stop_timeout=7.0)
    built = build_resources(cluster_with(resource), "a")
    adapter = built["data"]
    assert isinstance(adapter, VolumeResource)
    assert adapter.stop_timeout == 7.0
    assert adapter.params.mountpoint == "/srv/data"


def test_validate_reports_a_bad_key_once_for_all_nodes() -> None:
    resource = Resource("data", ResourceKind.VOLUME, freeze({**OK, "fsck": 1}))
    errors = validate(cluster_with(resource))
    assert [(e.resource, e.key) for e in errors] == [("data", "fsck")]


def test_shipped_example_volume_parses() -> None:
    cluster = load(EXAMPLES / "classic-database.toml")
    data = next(r for r in cluster.resources if r.kind is ResourceKind.VOLUME)
    assert all(e.resource != data.name for e in validate(cluster))
    p = parse_params(data.name, data.params, cluster.node_names[0], data.stop_timeout)
    assert (p.mountpoint, p.fstype) == ("/srv/postgresql", "ext4")


# ---- the mount table and this machine's risks ------------------------------------------------

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 7:3 / /srv/my\\040data rw,noatime shared:5 - ext4 /dev/loop3 rw\n"
    "41 40 0:50 / /srv/my\\040data/tmp rw - tmpfs tmpfs rw\n"
    "42 22 7:3 / /mnt/again ro,relatime - ext4 /dev/loop3 rw\n"
    "43 22 7:4 / /broken rw,relatime - ext4 /dev/loop4 ro,errors=remount-ro\n"
)


def test_mountinfo_parsing() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.point for m in mounts] == [
        "/", "/srv/my data", "/srv/my data/tmp", "/mnt/again", "/broken",
    ]  # fmt: skip
    data = mounts[1]
    assert (data.dev, data.source, data.fstype) == (os.makedev(7, 3), "/dev/loop3", "ext4")
    assert "noatime" in data.options and not data.read_only
    assert mounts[3].read_only  # the mount is read-only
    assert mounts[4].read_only  # the file system turned read-only
    assert top_mount(mounts, "/srv/my data") == data
    assert top_mount(mounts, "/nowhere") is None


def test_host_risks_fstab_and_mounted_now(tmp_path: Path) -> None:
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "/dev/sda1 / ext4 defaults 0 1\n"
        "/dev/sdb1 /srv/data ext4 defaults 0 2\n"
        "/dev/sdb1 /srv/data ext4 noauto 0 0\n"
        "LABEL=other /srv/data xfs defaults 0 0\n"
    )
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    risks = find_host_risks(parse(**OK), str(fstab), str(mountinfo))
    assert risks == [
        ("device", f"{fstab} line 3 mounts /dev/sdb1 on /srv/data at boot: add noauto to its "
                   "options or remove it, only the active node may mount it"),
        ("mountpoint", f"{fstab} line 5 mounts LABEL=other on /srv/data at boot: add noauto to "
                       "its options or remove it, only the active node may mount it"),
    ]  # fmt: skip


def test_host_risks_none_when_absent(tmp_path: Path) -> None:
    params = parse(**OK)
    assert find_host_risks(params, str(tmp_path / "no-fstab"), str(tmp_path / "none")) == []


def test_an_invalid_resource_has_no_host_risks() -> None:
    # Its error is reported by validate instead.
    bad = Resource("data", ResourceKind.VOLUME, MappingProxyType({"device": 1}))
    assert KINDS[ResourceKind.VOLUME].host_risks(bad, "a") == []
