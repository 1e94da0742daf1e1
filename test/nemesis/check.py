#!/usr/bin/env python3
"""Checker of the nemesis test (test/nemesis/run.sh).

Reads, from the run's directory: `history` (the clients' events, one per
line), `dump1..N` (each node's committed log after convergence, as
"offset hexbytes" lines), `events` (node starts, kills, exits) and
`n1..N.log` (node logs). Checks:

  dumps      every node's log was read in full, offsets dense from 0
  agree      all nodes hold the same records at every committed offset
  converged  the nodes converged (same commit offset and leader) in time
  acked      every acknowledged append is in the final log at the offset it
             was acknowledged with, with identical bytes
  rejected   no append that was rejected up front is in the log
  unique     no record is in the log twice, and every record in the log was
             appended by a client (no phantom records)
  reads      no read saw a record that differs from the final log there
  failstop   a node that exited by itself, failed stop or did not stop
             cleanly said why in its log

Prints each violation precisely, one "ok -"/"not ok -" line per check, and
last "nemesis: N passed, N failed".
"""
import argparse
import os
import re
import sys

MAX_SHOWN = 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--converged", type=int, default=1)
    a = ap.parse_args()
    d = a.dir
    passed = failed = 0
    results = []

    def report(name, problems, summary):
        nonlocal passed, failed
        if problems:
            failed += 1
            for p in problems[:MAX_SHOWN]:
                print(f"  {name}: {p}")
            if len(problems) > MAX_SHOWN:
                print(f"  {name}: ... and {len(problems) - MAX_SHOWN} more")
            results.append(f"not ok - {name}: {len(problems)} violation(s); {summary}")
        else:
            passed += 1
            results.append(f"ok - {name}: {summary}")

    # ---- dumps ----------------------------------------------------------------
    logs = {}
    probs = []
    status = {}
    for i in range(1, a.nodes + 1):
        path = os.path.join(d, f"dump{i}")
        recs = []
        complete = False
        try:
            with open(path) as f:
                for ln, line in enumerate(f, 1):
                    line = line.rstrip("\n")
                    if line.startswith("# status"):
                        status[i] = line
                    elif line.startswith("# end"):
                        complete = True
                    elif line.startswith("# error"):
                        probs.append(f"node {i}: {line[2:]}")
                    else:
                        off_s, _, hx = line.partition(" ")
                        off = int(off_s)
                        if off != len(recs):
                            probs.append(f"node {i}: offset {off} at line {ln} where "
                                         f"{len(recs)} was expected (offsets not dense)")
                            break
                        recs.append(bytes.fromhex(hx))
        except OSError as e:
            probs.append(f"node {i}: no dump ({e})")
        if not complete:
            probs.append(f"node {i}: dump incomplete")
        logs[i] = recs
    report("dumps", probs, ", ".join(f"node {i} {len(logs[i])} records" for i in logs))

    # ---- agree ----------------------------------------------------------------
    probs = []
    ids = sorted(logs)
    for x in ids:
        for y in ids:
            if y <= x:
                continue
            lx, ly = logs[x], logs[y]
            for off in range(min(len(lx), len(ly))):
                if lx[off] != ly[off]:
                    probs.append(f"nodes {x} and {y} differ at offset {off}: "
                                 f"{lx[off]!r} vs {ly[off]!r}")
                    break
            if len(lx) != len(ly):
                probs.append(f"node {x} has {len(lx)} committed records, node {y} {len(ly)}")
    report("agree", probs, "all nodes hold identical logs" if not probs else "logs differ")
    final = max(logs.values(), key=len) if logs else []

    report("converged", [] if a.converged else
           ["the nodes did not reach one commit offset and one leader in time"],
           "one commit offset, one leader")

    # ---- history -----------------------------------------------------------------
    invokes = {}   # opid -> list of records (bytes)
    outcome = {}   # opid -> ("ok", offset) | ("fail", msg) | ("unknown", msg)
    reads = []     # (opid, node, offset, bytes, line)
    hist_probs = []
    try:
        with open(os.path.join(d, "history")) as f:
            for ln, line in enumerate(f, 1):
                p = line.rstrip("\n").split(" ")
                if len(p) < 3:
                    continue
                kind = p[1]
                if kind == "invoke":
                    invokes[p[2]] = [r.encode() for r in p[6].split(",")]
                elif kind == "ok":
                    outcome[p[2]] = ("ok", int(p[3].split("=")[1]))
                elif kind in ("fail", "unknown"):
                    outcome[p[2]] = (kind, " ".join(p[3:]))
                elif kind == "read":
                    reads.append((p[2], p[3], int(p[4].split("=")[1]),
                                  bytes.fromhex(p[5]) if len(p) > 5 else b"", ln))
                elif kind == "readbad":
                    hist_probs.append(f"history line {ln}: {line.strip()}")
    except OSError as e:
        hist_probs.append(f"no history: {e}")

    where = {}
    dups = []
    for off, r in enumerate(final):
        if r in where:
            dups.append(f"record {r!r} at offsets {where[r]} and {off}")
        else:
            where[r] = off

    # ---- acked ----------------------------------------------------------------
    probs = list(hist_probs)
    n_ok = n_recs = 0
    for opid, (kind, val) in outcome.items():
        if kind != "ok":
            continue
        n_ok += 1
        for k, r in enumerate(invokes.get(opid, [])):
            n_recs += 1
            off = val + k
            if off >= len(final):
                probs.append(f"op {opid}: {r.decode()} acknowledged at offset {off}, "
                             f"beyond the final log's end {len(final)}"
                             + (f" (it is at offset {where[r]})" if r in where else " (lost)"))
            elif final[off] != r:
                probs.append(f"op {opid}: {r.decode()} acknowledged at offset {off}, "
                             f"but the final log has {final[off]!r} there"
                             + (f" (the record is at offset {where[r]})" if r in where
                                else " (the record is lost)"))
    report("acked", probs, f"{n_ok} acknowledged appends, {n_recs} records")

    # ---- rejected ---------------------------------------------------------------
    probs = []
    n_fail = n_unknown = n_unknown_in = 0
    for opid, (kind, val) in outcome.items():
        if kind == "fail":
            n_fail += 1
            for r in invokes.get(opid, []):
                if r in where:
                    probs.append(f"op {opid}: {r.decode()} was rejected ({val}) "
                                 f"but is in the log at offset {where[r]}")
        elif kind == "unknown":
            n_unknown += 1
            if any(r in where for r in invokes.get(opid, [])):
                n_unknown_in += 1
    report("rejected", probs, f"{n_fail} rejected appends absent; {n_unknown} indeterminate, "
           f"{n_unknown_in} of them in the log")

    # ---- unique -------------------------------------------------------------------
    probs = list(dups)
    invoked = set()
    for recs in invokes.values():
        invoked.update(recs)
    for off, r in enumerate(final):
        if r not in invoked:
            probs.append(f"offset {off}: record {r!r} was never appended by a client")
    # an indeterminate append is all-or-nothing (one contiguous run)
    for opid, (kind, _) in outcome.items():
        recs = invokes.get(opid, [])
        if kind == "unknown" or kind == "ok":
            present = [r in where for r in recs]
            if any(present) and not all(present):
                probs.append(f"op {opid}: only some of its records are in the log: "
                             + ", ".join(f"{r.decode()}@{where.get(r)}" for r in recs))
            elif all(present) and recs:
                offs = [where[r] for r in recs]
                if offs != list(range(offs[0], offs[0] + len(offs))):
                    probs.append(f"op {opid}: its records are not one contiguous run: {offs}")
    no_outcome = [o for o in invokes if o not in outcome]
    report("unique", probs, f"{len(final)} records, each appended once; "
           f"{len(no_outcome)} invocations without an outcome")

    # ---- reads ----------------------------------------------------------------------
    probs = []
    for opid, node, off, data, ln in reads:
        if off >= len(final):
            probs.append(f"read {opid} ({node}, history line {ln}) saw {data!r} at offset "
                         f"{off}, beyond the final log's end {len(final)}")
        elif final[off] != data:
            probs.append(f"read {opid} ({node}, history line {ln}) saw {data!r} at offset "
                         f"{off}; the final log has {final[off]!r}")
    report("reads", probs, f"{len(reads)} reads match the final log")

    # ---- failstop -------------------------------------------------------------------
    probs = []
    n_exits = 0
    starts = {}
    try:
        with open(os.path.join(d, "events")) as f:
            ev = [ln.split() for ln in f]
    except OSError:
        ev = []

    def log_since(i, pos):
        try:
            with open(os.path.join(d, f"n{i}.log"), errors="replace") as f:
                f.seek(pos)
                return f.read()
        except OSError:
            return ""
    for e in ev:
        i = int(e[0])
        if e[1] == "start":
            starts[i] = int(e[2])
        elif e[1] in ("exited", "stopped") and e[2] != "0":
            n_exits += 1
            text = log_since(i, starts.get(i, 0))
            why = [ln for ln in text.splitlines() if "error" in ln]
            what = "exited by itself" if e[1] == "exited" else "did not stop cleanly"
            if not why:
                probs.append(f"node {i} {what} (status {e[2]}) and its log says no why")
            else:
                print(f"  failstop: node {i} {what} (status {e[2]}): {why[-1].strip()}")
    for i in range(1, a.nodes + 1):
        text = log_since(i, 0)
        for ln in text.splitlines():
            m = re.search(r"failed stop(.*)", ln)
            if m:
                n_exits += 1
                if len(m.group(1).strip(" :")) < 5:
                    probs.append(f"node {i}: fail-stop without a reason: {ln.strip()}")
                else:
                    print(f"  failstop: node {i}: {ln.strip()}")
        st = status.get(i, "")
        if re.search(r"fatal=[1-9-]", st) and "failed stop" not in text:
            probs.append(f"node {i} reports fatal in its status ({st}) but its log says no why")
    report("failstop", probs, f"{n_exits} unplanned exits or fail-stops, each explained")

    for r in results:
        print(r)
    print(f"nemesis: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
