"""The campaign's state, its report, and the archive that carries it from one call to the next."""

from __future__ import annotations

import io
import json
import math
import platform
import shutil
import tarfile
from pathlib import Path

import campaign_plan as plan

__all__ = ["CampaignError", "load_state", "save_state", "log_path", "machine", "last_error",
           "plan_table", "write", "pack", "unpack", "CARRY_MB"]

# The campaign folder is committed and travels to the next call in the working tree, which
# the device caps at 64 MiB with .carry/ (about 30 MB: the CIFAR-10 archive, the wheels), and
# comes back from $OUT (at most 8 files, 64 MiB). So half-finished trainings' states may take
# CARRY_MB in all; a training whose state is larger starts only when it will finish.
CARRY_MB = 25
PART_BYTES = 15 * 2**20
MAX_PARTS = 2  # the archive's parts: the folder stays within what the tree can carry
CALL_MINUTES = 8.5  # a lease's useful call (the first spends 2.5 of them on the probe)
STARTUP_S = 30.0  # a call's start: imports, the data decoded on a fresh machine


class CampaignError(Exception):
    """One line for the user: a bad archive, another campaign's folder, no GPU."""


def check_setup(out: Path, setup: str) -> None:
    """CampaignError when ``out`` holds another campaign (a dry run's, the real one's), before
    anything is written into it."""
    load_state(out, setup)


def load_state(out: Path, setup: str) -> dict:
    """campaign.json in ``out`` (a new state when there is none)."""
    path = out / "campaign.json"
    if not path.is_file():
        return {"setup": setup, "pieces": {}, "calls": []}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CampaignError(f"{path} is damaged ({exc}); restore it from git") from None
    if state.get("setup") != setup:
        raise CampaignError(f"{out} holds the campaign {state.get('setup')!r}, not {setup!r}: "
                            "choose another --out")
    return state


def save_state(out: Path, state: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".campaign.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(out / "campaign.json")


def log_path(out: Path, piece: str) -> Path:
    return out / "work" / "logs" / (piece.replace(" ", "-").replace("@", "-at-") + ".log")


def machine() -> dict:
    """The device, the versions: what a reader needs to weigh the times."""
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "host": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores"}
    if torch.cuda.is_available():
        info |= {"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    else:
        info["device"] = "cpu"
    try:
        import optuna

        info["optuna"] = optuna.__version__
    except ImportError:
        pass
    return info


def last_error(log: Path) -> str:
    """The last line of a failed piece's log that says what went wrong."""
    try:
        lines = [ln.strip() for ln in log.read_text().splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def window(setup: plan.Setup) -> float:
    """Seconds a call of CALL_MINUTES gives a piece that must finish in it."""
    return 60 * CALL_MINUTES - setup.margin_s - setup.report_s - STARTUP_S


def _status(setup: plan.Setup, p: plan.Piece, info: dict, need: float) -> str:
    if info.get("done"):
        return "done"
    if p.network is not None and need > window(setup) and \
            plan.state_mb(p.network) > CARRY_MB:
        return (f"blocked: longer than a call and its state ({plan.state_mb(p.network):.0f} "
                f"MB) too big to carry")
    if info.get("error"):
        return f"failed: {info['error']}"
    return f"started ({info['seconds'] / 60:.1f} min spent)" if info.get("seconds") else "left"


def _rows(setup: plan.Setup, pieces: list[plan.Piece], rates: plan.Rates, state: dict
          ) -> tuple[list[tuple], float]:
    rows, left = [], 0.0
    for p in pieces:
        info = state["pieces"].get(p.name, {})
        predicted = plan.predict(setup, p, rates)
        # a piece not done needs some time still, even past its prediction
        need = max(predicted - info.get("seconds", 0.0), 0.1 * predicted, 30.0)
        status = _status(setup, p, info, need)
        if status != "done":
            left += need
        mb = f"{plan.state_mb(p.network):.0f}" if p.network is not None else ""
        rows.append((p.name, status, need / 60, info.get("seconds", 0.0) / 60, mb,
                     info.get("command") or "nas " + " ".join(p.first)))
    return rows, left


def plan_table(setup: plan.Setup, pieces: list[plan.Piece], rates: plan.Rates,
               state: dict) -> str:
    """What is left, in order, with predicted minutes: the text of --plan."""
    rows, left = _rows(setup, pieces, rates, state)
    lines = [f"campaign: {setup.name} ({setup.budget}); predictions from "
             + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s ({rates.source[k]})"
                         for k, v in rates.flops.items())
             + (f", {rates.trial_s:.1f} s a search trial (measured)" if rates.trial_s else ""),
             f"{'piece':36s} {'status':28s} {'min left':>8s} {'spent':>6s} {'state MB':>8s}"]
    for name, status, need, spent, mb, _ in rows:
        lines.append(f"{name:36s} {status[:28]:28s} {need:8.1f} {spent:6.1f} {mb:>8s}")
    calls = math.ceil(left / 60 / (CALL_MINUTES - 1))
    complete = all(r[1] == "done" for r in rows)
    lines.append("nothing is left: the campaign is complete" if complete else
                 f"left: {left / 60:.0f} GPU-minutes, about {calls} call(s) of "
                 f"{CALL_MINUTES:g} minutes")
    return "\n".join(lines)


def write(out: Path, setup: plan.Setup, pieces: list[plan.Piece], rates: plan.Rates,
          state: dict) -> None:
    """report.md (status, result, what is missing, pieces, calls) and the run's files."""
    rows, left = _rows(setup, pieces, rates, state)
    done = sum(r[1] == "done" for r in rows)
    work = out / "work"
    for src, name in ((work / "searched" / "best.yaml", "best.yaml"),
                      (work / "searched" / "model.py", "model.py"),
                      (work / "compare" / "pareto.png", "pareto.png")):
        if src.is_file():
            shutil.copyfile(src, out / name)
    complete = all(r[1] == "done" for r in rows)
    status = ("**Complete: every piece is done; nothing is missing.**" if complete else
              f"**Not complete: {done} of {len(rows)} pieces done; about {left / 60:.0f} "
              f"GPU-minutes left (see What is missing).**")
    lines = [f"# CIFAR-10 at {setup.budget}: the searched network against hand-designed ones "
             f"({setup.name})", "", status, "",
             "Made by `python benchmarks/campaign.py` in device calls of a few minutes; every "
             "figure below was measured in those calls, none is predicted, except the minutes "
             "left.", ""]
    lines += _result(work)
    missing = [r for r in rows if r[1] != "done"]
    if missing:
        lines += ["## What is missing", "", "| piece | status | GPU-min left (predicted) |",
                  "|---|---|---:|"]
        lines += [f"| {r[0]} | {r[1]} | {r[2]:.1f} |" for r in missing] + [""]
    lines += ["## Pieces", "", "| piece | status | device-min spent | command |",
              "|---|---|---:|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[3]:.1f} | `{r[5]}` |" for r in rows] + [""]
    lines += ["## Device calls", "", "| started (UTC) | device | host | torch | minutes | ran |",
              "|---|---|---|---|---:|---|"]
    for c in state["calls"]:
        m = c["machine"]
        lines.append(f"| {c['started']} | {m.get('device')} {m.get('cuda') or ''} | "
                     f"{m.get('host')} | {m.get('torch')} | {c.get('seconds', 0) / 60:.1f} | "
                     f"{', '.join(dict.fromkeys(c['ran'])) or '-'} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def _result(work: Path) -> list[str]:
    """The comparison's table, from `nas compare --report-only`'s report of what is trained."""
    src = work / "compare" / "report.md"
    if not src.is_file():
        return ["## Result", "", "Nothing trained by the final recipe yet.", ""]
    text = src.read_text().replace("](pareto.png)", "](pareto.png)").replace(
        "](params.png)", "](work/compare/params.png)")
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    return ["## Result (`nas compare`, from what is trained)", body, ""]


def pack(out: Path, dest: Path) -> list[Path]:
    """``out`` as campaign.tar.gz in ``dest``, in parts of 15 MiB (.00, .01, ...) when larger.
    Past the parts a call brings back, the largest training states are left out (their
    trainings start again) rather than the whole archive lost; it says which."""
    states = sorted(out.rglob("*.state"), key=lambda f: f.stat().st_size)
    dropped: list[Path] = []
    while True:
        data = _tar(out, set(dropped))
        if len(data) <= MAX_PARTS * PART_BYTES or not states:
            break
        dropped.append(states.pop())
    for f in dropped:
        print(f"campaign: left out of the archive, too big to carry: {f} "
              f"({f.stat().st_size / 1e6:.0f} MB); that training starts again", flush=True)
    dest.mkdir(parents=True, exist_ok=True)
    chunks = [data] if len(data) <= PART_BYTES else \
        [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    paths = [dest / "campaign.tar.gz"] if len(chunks) == 1 else \
        [dest / f"campaign.tar.gz.{i:02d}" for i in range(len(chunks))]
    for path, chunk in zip(paths, chunks):  # whole files only: a kill leaves the last pack
        path.with_name(f".{path.name}.tmp").write_bytes(chunk)
    for old in dest.glob("campaign.tar.gz*"):
        old.unlink()
    for path in paths:
        path.with_name(f".{path.name}.tmp").replace(path)
    print(f"campaign: packed {out} into {len(paths)} file(s), {len(data) / 1e6:.1f} MB, in "
          f"{dest}", flush=True)
    return paths


def _tar(out: Path, leave_out: set[Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.add(out, arcname=".", filter=lambda m: None if out / m.name in leave_out else m)
    return buf.getvalue()


def unpack(archive: Path, out: Path) -> None:
    """A packed campaign in place of ``out`` (its parts joined when ``archive`` is the .00
    one). It replaces the folder whole: a state file the call deleted (its training done)
    must not linger from the copy here."""
    parts = [archive]
    if archive.suffix == ".00":
        parts = sorted(archive.parent.glob(archive.stem + ".[0-9][0-9]"))
        if [p.suffix for p in parts] != [f".{i:02d}" for i in range(len(parts))]:
            raise CampaignError(f"the parts of {archive.stem} are not all here: "
                                f"{', '.join(p.name for p in parts)}")
    if not archive.is_file():
        raise CampaignError(f"no archive {archive}" + (
            f" (it came in parts: --restore {archive}.00)" if
            archive.with_name(archive.name + ".00").is_file() else ""))
    data = b"".join(p.read_bytes() for p in parts)
    fresh = out.with_name(f".{out.name}.restoring")
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(fresh, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        raise CampaignError(f"{archive} is not a campaign archive ({exc})") from None
    if not (fresh / "campaign.json").is_file():
        shutil.rmtree(fresh, ignore_errors=True)
        raise CampaignError(f"{archive} holds no campaign.json: not a campaign archive")
    shutil.rmtree(out, ignore_errors=True)
    fresh.replace(out)
    print(f"campaign: restored {archive} ({len(parts)} part(s)) into {out}", flush=True)
