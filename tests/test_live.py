"""``portlabel live`` for real: a veth pair between two network namespaces made for the test.

``portlabel live`` runs (as a subprocess) on one end, tcpreplay replays a real capture
from captures/ onto the other end, SIGINT/SIGTERM stops the capture, and the flows must
equal what the file pipeline (the engine behind ``portlabel label``) gives for the same
file: packets, IP bytes and labels per connection. Replay compresses time, so flows that
an idle timeout splits in the file may be joined live; flows are therefore compared per
unordered 5-tuple (the sum over that tuple's flows). Traffic only ever goes to the veth
ends inside the namespaces created here, which are always deleted afterwards.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
_ids = itertools.count()


def _live_skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (network namespaces, AF_PACKET)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip netns)"
    if shutil.which("tcpreplay") is None:
        return "needs tcpreplay"
    return None


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(_live_skip_reason() is not None, reason=str(_live_skip_reason())),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def veth(request):
    """(capture namespace, capture iface, replay namespace, replay iface); deleted after."""
    tag = f"{os.getpid() % 100000}x{next(_ids)}"
    cap_ns, rep_ns = f"plcap{tag}", f"plrep{tag}"
    cap_if, rep_if = f"plc{tag}", f"plr{tag}"
    created: list[str] = []

    def cleanup():
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    request.addfinalizer(cleanup)
    for ns in (cap_ns, rep_ns):
        _ip("netns", "add", ns)
        created.append(ns)
        # no IPv6 autoconfiguration: the namespaces must send nothing of their own
        for key in ("all", "default"):
            subprocess.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw",
                 f"net.ipv6.conf.{key}.disable_ipv6=1"],
                check=True, capture_output=True,
            )  # fmt: skip
    _ip("link", "add", cap_if, "netns", cap_ns, "type", "veth", "peer", "name", rep_if,
        "netns", rep_ns)  # fmt: skip
    for ns, iface in ((cap_ns, cap_if), (rep_ns, rep_if)):
        _ip("-n", ns, "link", "set", iface, "mtu", "65535")
        _ip("-n", ns, "link", "set", iface, "up")
    return cap_ns, cap_if, rep_ns, rep_if


class Live:
    """A ``portlabel live`` subprocess inside a namespace."""

    def __init__(self, ns: str, args: list[str]) -> None:
        argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "portlabel", "live", *args]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.first = ""
        while "capturing on" not in self.first:
            line = self.proc.stderr.readline().decode()
            self.first += line
            if not line:
                self.proc.kill()
                pytest.fail(f"portlabel live did not start: {self.first}")

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out.decode(), self.first + err.decode()


def replay(ns: str, iface: str, capture: Path, *rate: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "tcpreplay", "-q", "-i", iface, *(rate or ("--topspeed",)),
         str(capture)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Failed packets:            0" in done.stdout, done.stdout
    time.sleep(0.5)  # the ring's retire timeout hands the last block over


def reference_flows(capture: Path, drop_last: bool = False) -> list[dict]:
    """The file pipeline's labelled flows (what ``portlabel label`` writes)."""
    from portlabel.capture.inputs import CaptureInputs
    from portlabel.labelling.pipeline import label_batches
    from portlabel.live.session import _head
    from portlabel.registry import default_registry

    batches = list(CaptureInputs([capture]).raw_batches())
    if drop_last:
        batches[-1] = _head(batches[-1], len(batches[-1]) - 1)
    rows = []
    for table in label_batches(batches, default_registry()):
        rows.extend(table.to_pylist())
    return rows


def by_connection(flows: list[dict]) -> dict:
    """Unordered 5-tuple -> (packets, IP bytes, labels seen)."""
    out: dict = {}
    for f in flows:
        a = (f["id.orig_h"], f["id.orig_p"])
        b = (f["id.resp_h"], f["id.resp_p"])
        key = (f["proto"], f["ip_proto"], *sorted([a, b], key=repr), f["vlan"])
        pkts, nbytes, labels = out.get(key, (0, 0, frozenset()))
        out[key] = (
            pkts + f["orig_pkts"] + f["resp_pkts"],
            nbytes + f["orig_ip_bytes"] + f["resp_ip_bytes"],
            labels | {(f["iana.service"], f["iana.port"], f["iana.transport"])},
        )
    return out


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def totals_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "totals" in line]
    assert lines, stderr
    return lines[-1]


@pytest.mark.parametrize(
    "capture",
    [
        "zeek_wikipedia.pcap",
        "zeekreal_infected.pcap",
        "zeek_ssh.pcap",
        "ndpi_1kxun.pcap",  # frames up to 37 kB: needs the large veth MTU
        "zeek_q-in-q.pcap",  # 802.1Q tags the kernel strips and the ring must put back
        "zeek_vxlan.pcap",  # tunnels: outer and inner flows
    ],
)
@pytest.mark.parametrize("backend", ["native"])
def test_live_flows_equal_file_flows(veth, capture, backend):
    cap_ns, cap_if, rep_ns, rep_if = veth
    run = Live(cap_ns, ["-i", cap_if, "--backend", backend])
    replay(rep_ns, rep_if, CAPTURES / capture)
    rc, out, err = run.stop(signal.SIGINT)
    assert rc == 0, err
    live_flows = jsonl(out)
    want = reference_flows(CAPTURES / capture)
    assert by_connection(live_flows) == by_connection(want)
    assert "dropped 0" in totals_line(err)


@pytest.mark.parametrize("backend", ["scapy", "pyshark"])
def test_slow_backends_equal_file_flows(veth, backend):
    cap_ns, cap_if, rep_ns, rep_if = veth
    capture = CAPTURES / "zeek_wikipedia.pcap"
    run = Live(cap_ns, ["-i", cap_if, "--backend", backend])
    replay(rep_ns, rep_if, capture, "--pps", "200")
    time.sleep(1.0)
    rc, out, err = run.stop(signal.SIGINT)
    assert rc == 0, err
    got = by_connection(jsonl(out))
    if backend == "pyshark" and got != by_connection(reference_flows(capture)):
        # pyshark's JSON stream parser drops the packet tshark emits last when its
        # input ends (it waits for a following separator that never comes)
        assert got == by_connection(reference_flows(capture, drop_last=True))
    else:
        assert got == by_connection(reference_flows(capture))


@pytest.mark.parametrize("backend", ["native", "scapy", "pyshark"])
def test_duration_ends_the_capture_on_time_with_every_packet(veth, backend):
    """pyshark used to keep the dumpcap-to-tshark pipe open: tshark never saw its input
    end, and ``--duration 2`` waited out two 30 s stop timeouts."""
    cap_ns, cap_if, rep_ns, rep_if = veth
    capture = CAPTURES / "zeek_wikipedia.pcap"
    started = time.monotonic()
    run = Live(cap_ns, ["-i", cap_if, "--backend", backend, "--duration", "4"])
    replay(rep_ns, rep_if, capture, "--pps", "400")
    out, err = run.proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert run.proc.returncode == 0, err
    assert took < 12, f"--duration 4 took {took:.1f} s"
    err = err.decode()
    assert "Unknown child process" not in err and "Exception ignored" not in err, err
    got = by_connection(jsonl(out.decode()))
    assert got in (
        by_connection(reference_flows(capture)),
        by_connection(reference_flows(capture, drop_last=True)),
    )


def test_bpf_filter_filters(veth):
    cap_ns, cap_if, rep_ns, rep_if = veth
    capture = CAPTURES / "zeekreal_infected.pcap"
    run = Live(cap_ns, ["-i", cap_if, "-f", "udp port 53"])
    replay(rep_ns, rep_if, capture)
    rc, out, err = run.stop()
    assert rc == 0, err
    got = jsonl(out)
    want = [f for f in reference_flows(capture) if f["proto"] == "udp" and 53 in
            (f["id.orig_p"], f["id.resp_p"])]  # fmt: skip
    assert want and len(want) < len(reference_flows(capture))
    assert by_connection(got) == by_connection(want)


def test_sigterm_flushes_zeek_log_with_rotation(veth, tmp_path):
    """SIGTERM mid-capture: every flow (most still active) lands in closed, rotated logs."""
    cap_ns, cap_if, rep_ns, rep_if = veth
    capture = CAPTURES / "zeek_ssh.pcap"
    log = tmp_path / "conn.log"
    run = Live(cap_ns, ["-i", cap_if, "-F", "zeek", "-o", str(log), "--rotate", "1",
                        "--stats-interval", "1"])  # fmt: skip
    replay(rep_ns, rep_if, capture, "--pps", "1000")
    rc, _out, err = run.stop(signal.SIGTERM)
    assert rc == 0, err
    assert not log.exists()  # the last file was rotated at exit too
    rotated = sorted(glob.glob(str(tmp_path / "conn.*-*.log")))
    assert len(rotated) >= 2
    rows = []
    for name in rotated:
        lines = Path(name).read_text().splitlines()
        assert lines[0] == "#separator \\x09" and lines[-1].startswith("#close")
        fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
        rows += [dict(zip(fields, x.split("\t"), strict=True)) for x in lines
                 if not x.startswith("#")]  # fmt: skip
    want = reference_flows(capture)
    key = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
    got_pk = Counter(
        (tuple(r[k] for k in key), int(r["orig_pkts"]) + int(r["resp_pkts"])) for r in rows
    )
    want_pk = Counter(
        (tuple(str(f[k]) for k in key), f["orig_pkts"] + f["resp_pkts"]) for f in want
    )
    assert got_pk == want_pk
    assert sum(1 for line in err.splitlines() if "kernel received" in line) >= 2


def test_count_stops_after_n_packets(veth):
    cap_ns, cap_if, rep_ns, rep_if = veth
    run = Live(cap_ns, ["-i", cap_if, "-c", "50"])
    replay(rep_ns, rep_if, CAPTURES / "zeek_wikipedia.pcap")
    out, err = run.proc.communicate(timeout=60)  # ends by itself
    assert run.proc.returncode == 0, err
    flows = jsonl(out.decode())
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in flows) <= 50
    assert "read 50 packets" in totals_line(err.decode())


def test_user_drops_root_after_opening_capture(veth):
    cap_ns, cap_if, rep_ns, rep_if = veth
    run = Live(cap_ns, ["-i", cap_if, "--user", "nobody"])
    status = Path(f"/proc/{run.proc.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    replay(rep_ns, rep_if, CAPTURES / "zeek_wikipedia.pcap")
    rc, out, err = run.stop()
    assert rc == 0, err
    assert set(uids) == {str(pwd.getpwnam("nobody").pw_uid)}
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in jsonl(out)) > 0


READ_FRAMES = """
import sys, time
import numpy as np
from portlabel.live.afpacket import NativeSource
src = NativeSource([sys.argv[1]], lambda dlt: None, ring_mb=64, min_batch=4, linger=0.01)
print("ready", flush=True)
want, seen, keep, k = int(sys.argv[2]), 0, None, 0
deadline = time.monotonic() + 30
while seen < want and time.monotonic() < deadline:
    b = src.read(0.2)
    if b is None:
        continue
    mode = "ring" if np.shares_memory(b.buf, src.rings[0].ring) else "copy"
    for i in range(len(b)):
        print(mode, b.frame_bytes(i).hex())
    seen += len(b)
    keep = b if k % 2 else None  # odd batches outlive the next read: it must copy
    k += 1
    del b
"""


def test_native_frames_equal_file_frames_in_ring_and_copied(veth):
    """Every frame the native source hands out, whether it points into the kernel ring or
    was copied because an earlier batch still viewed the ring, is byte-identical to the
    file's frame (802.1Q tags the kernel strips put back, QinQ here). The ring is large
    enough never to fill (a full ring switches the source to copying for good)."""
    from portlabel.capture.reader import open_capture

    cap_ns, cap_if, rep_ns, rep_if = veth
    capture = CAPTURES / "zeek_pppoe-over-qinq.pcap"
    want = [b.frame_bytes(i).hex() for b in open_capture(capture).batches() for i in range(len(b))]
    reader = subprocess.Popen(
        ["ip", "netns", "exec", cap_ns, sys.executable, "-c", READ_FRAMES, cap_if, str(len(want))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout.readline().strip() == "ready"
    replay(rep_ns, rep_if, capture, "--pps", "200")  # a few frames per batch
    out, _ = reader.communicate(timeout=60)
    got = [line.split() for line in out.splitlines()]
    assert [frame for _, frame in got] == want
    assert {mode for mode, _ in got} == {"ring", "copy"}
