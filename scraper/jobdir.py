"""JOBDIR hygiene: tell a job stopped cleanly from one killed mid-way, and never resume from the latter.

Scrapy keeps a job's scheduler state in JOBDIR: the disk queue (`requests.queue/`, whose index `active.json` is
written only when the scheduler closes), the fingerprints of every request ever scheduled (`requests.seen`,
appended as requests are scheduled) and `spider.state` (pickled when the spider closes). After a clean stop the
three agree. After a SIGKILL (OOM killer, power cut) `requests.seen` names requests that are in no saved queue:
a resumed crawl filters them as duplicates and the lots behind them are lost without a trace.

So a clean close leaves a `clean-stop` marker in JOBDIR and every start removes it. A start that finds
scheduler state but no marker discards that state and crawls from the calendar again; the feed is appended to
(`-o`) and read back de-duplicated by lot_key, so nothing written before the kill is lost or counted twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from common import atomic_write

CLEAN_STOP_MARKER = "clean-stop"
SCHEDULER_STATE = ("requests.queue", "requests.seen", "spider.state")  # what Scrapy 2.19 keeps in a JOBDIR
CLEAN_CLOSE_REASONS = frozenset({"finished", "shutdown"})  # closes that saved queue, fingerprints and state


def scheduler_state(jobdir: Path) -> list[str]:
    """The names of the scheduler-state entries present in `jobdir`."""
    return [name for name in SCHEDULER_STATE if (jobdir / name).exists()]


def was_stopped_cleanly(jobdir: Path) -> bool:
    return (jobdir / CLEAN_STOP_MARKER).is_file()


def begin_job(jobdir: Path) -> list[str]:
    """Prepare `jobdir` for a crawl before Scrapy's scheduler reads it; return what was discarded.

    Keeps the state of a job that stopped cleanly; discards (and returns the names of) the state of one that
    did not. Either way the clean-stop marker is removed, so a kill during this run is detected next time.
    """
    jobdir.mkdir(parents=True, exist_ok=True)
    present = scheduler_state(jobdir)
    discarded = [] if was_stopped_cleanly(jobdir) else present
    for name in discarded:
        path = jobdir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (jobdir / CLEAN_STOP_MARKER).unlink(missing_ok=True)
    return discarded


def end_job(jobdir: Path, reason: str) -> bool:
    """Write the clean-stop marker when the spider closed for a reason that saved its state; return whether
    it did. Call it after Scrapy's scheduler and SpiderState have written theirs."""
    if reason not in CLEAN_CLOSE_REASONS:
        return False
    with atomic_write(jobdir / CLEAN_STOP_MARKER, "w") as fh:
        fh.write(f"{reason}\n")
    return True


def resumes_job(jobdir: str | Path | None) -> bool:
    """Whether a crawl with this JOBDIR continues an earlier run (its fingerprints are there), so its side
    logs (failures, rejects) must be appended to rather than started afresh. Meaningful once `begin_job` ran."""
    return bool(jobdir) and (Path(jobdir) / "requests.seen").exists()
