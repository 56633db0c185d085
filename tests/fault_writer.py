"""A writer run under `fiu-run -x` (libfiu's POSIX preload) by test_faults.py: for every write
operation of the store and every injection point, it fails the Nth call of that point, for each N
the operation makes, and checks after each fault what a user is promised. Prints one JSON line.

Faults are armed through libfiu's C API (ctypes, the library the preload already loaded) with an
external callback that counts the point's calls and fails exactly the Nth, with a chosen errno."""

from __future__ import annotations

import ctypes
import errno
import json
import sys
import traceback

# sqlite-utils imports pandas (and with it pyarrow) when it is installed; pyarrow's initialisation
# can deadlock under libfiu's preload, and the store needs neither
sys.modules["pandas"] = None

from memstore import MemoryStore  # noqa: E402
from memstore.errors import MemstoreError  # noqa: E402

POINTS = {  # libfiu point -> the errnos a disk gives there
    "posix/io/rw/pwrite": (errno.EIO, errno.ENOSPC),
    "posix/io/rw/write": (errno.EIO, errno.ENOSPC),
    "posix/io/sync/fdatasync": (errno.EIO,),
    "posix/io/sync/fsync": (errno.EIO,),
    "posix/io/oc/open": (errno.EIO, errno.EMFILE),
    "posix/io/rw/ftruncate": (errno.EIO,),
}

_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                       ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_uint))


class Injector:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libfiu.so.0")
        self.lib.fiu_enable_external.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, _CB]
        self.lib.fiu_disable.argtypes = [ctypes.c_char_p]
        self.callback = _CB(self._decide)
        self.calls = self.nth = self.errno = 0
        self.fired = False

    def _decide(self, name, failnum, failinfo, flags) -> int:
        self.calls += 1
        if self.calls == self.nth:
            failinfo[0] = self.errno
            self.fired = True
            return 1
        return 0

    def arm(self, point: str, nth: int, err: int) -> None:
        self.calls, self.nth, self.errno, self.fired = 0, nth, err, False
        self.lib.fiu_enable_external(point.encode(), 1, None, 0, self.callback)

    def disarm(self, point: str) -> int:
        self.lib.fiu_disable(point.encode())
        return self.calls


def operations(store: MemoryStore, tag: str):
    """Each write the store offers, as (name, call); a call returns the memory ids it acknowledged."""
    def add():
        return [store.add(f"{tag} single add").memory_id]

    def several():
        with store.transaction():
            return [store.add(f"{tag} in a transaction {i}").memory_id for i in range(5)]

    def bulk():
        with store.bulk():
            return [store.add(f"{tag} bulk {i}").memory_id for i in range(60)]

    def update():
        m = store.add(f"{tag} to update").memory_id
        store.update(m, f"{tag} updated")
        return [m]

    def input_and_add():
        inp, _ = store.record_input("Alice", f"{tag} said", None)
        return [store.add(f"{tag} from an input", source=[inp.input_id]).memory_id]

    def erase():
        m = store.add(f"{tag} secret to erase").memory_id
        store.erase(m, reason="privacy request")
        return []

    def reopen():  # another connection to the file: its database, WAL, shm and lock files opened
        other = MemoryStore(store.path, "faults", create=False)
        other.close()
        return []

    return [("add", add), ("transaction", several), ("bulk", bulk), ("update", update),
            ("record_input", input_and_add), ("erase", erase), ("open", reopen)]


def main(path: str, budget: int) -> None:
    store = MemoryStore(path, "faults")
    injector = Injector()
    report = {"trials": 0, "fired": 0, "failures": [], "crashes": [], "acknowledged": [], "broken": [],
              "next_write_failed": [], "points": {}}
    trial = 0
    for point, errnos in POINTS.items():
        for name, _ in operations(store, "count"):
            # how many calls of the point the operation makes, counted with nothing failing
            injector.arm(point, 0, 0)
            try:
                dict(operations(store, f"count {point} {name}"))[name]()
            finally:
                calls = injector.disarm(point)
            for nth in range(1, min(calls, budget) + 1):
                for err in errnos:
                    trial += 1
                    tag = f"t{trial}"
                    op = dict(operations(store, tag))[name]
                    injector.arm(point, nth, err)
                    try:
                        report["acknowledged"] += op()
                    except MemstoreError as exc:
                        report["failures"].append(str(exc))
                    except BaseException:
                        report["crashes"].append(f"{point}#{nth} {errno.errorcode[err]} {name}: "
                                                 + traceback.format_exc(limit=4))
                    finally:
                        injector.disarm(point)
                    report["trials"] += 1
                    report["fired"] += injector.fired
                    report["points"][point] = report["points"].get(point, 0) + injector.fired
                    try:  # the fault has cleared: the next write succeeds and the file verifies
                        report["acknowledged"].append(store.add(f"{tag} next write").memory_id)
                    except BaseException as exc:
                        report["next_write_failed"].append(f"{point}#{nth} {name}: {exc!r}")
                        store = MemoryStore(path, "faults")
                    out = store.verify(deep=True)
                    if not out["ok"]:
                        report["broken"].append(f"{point}#{nth} {name}: {out['problem']}")
    store.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
