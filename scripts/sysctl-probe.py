#!/usr/bin/env python3
import ctypes, os, threading, time, sys
# Why a create slows down as namespaces pile up: the first sysctl write in a
# fresh namespace, after N namespaces that each touched /proc/sys (README,
# Performance). Run as root; it pins its namespaces under /tmp and removes them.
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
base = __import__("tempfile").mkdtemp(prefix="sysctl-probe-")

def pin(path):
    def f():
        assert libc.unshare(CLONE_NEWNET) == 0
        open(path, "w").close()
        assert libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None) == 0
        with open("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "w") as fh: fh.write("1")
    t = threading.Thread(target=f); t.start(); t.join()
def probe(name):
    out = {}
    def f():
        assert libc.unshare(CLONE_NEWNET) == 0
        p = f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6"
        t = time.perf_counter()
        for _ in range(1):
            with open(p, "w") as fh: fh.write("1")
        out["us"] = (time.perf_counter() - t) * 1e6
    t = threading.Thread(target=f); t.start(); t.join()
    return out["us"]
pins = []
try:
    for n in [0, 500, 2000]:
        while len(pins) < n:
            p = f"{base}/ns{len(pins)}"; pin(p); pins.append(p)
        print(f"namespaces {n}: write conf/lo/disable_ipv6 {probe('lo'):.1f} us, conf/all {probe('all'):.1f} us", flush=True)
finally:
    for p in pins:
        libc.umount2(p.encode(), 2); os.unlink(p)
    os.rmdir(base)
