"""A widget's background runs: start, progress, cancel, outcome.

One :class:`RunController` per widget. It starts a napari thread worker on
:func:`~napari_denoise._jobs.filter_job`, shows a progress bar with a cancel
button in napari's activity dock, cancels through the run's
:class:`~napari_denoise._scheduler.CancelToken`, and hands the
:class:`~napari_denoise._jobs.JobOutcome` to the widget, once.
"""

from __future__ import annotations

from collections.abc import Callable

from napari.qt.threading import GeneratorWorker
from napari.utils import cancelable_progress

from ._jobs import JobOutcome, filter_job
from ._scheduler import CancelToken

__all__ = ["RunController"]


class _RunProgress(cancelable_progress):
    """Progress bar whose cancel button (activity dock) cancels the run at once.

    ``cancelable_progress`` only calls ``cancel_callback`` while it is
    iterated; the controller updates it by hand, so the callback is called
    here.
    """

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class RunController:
    """Runs one op at a time in the background for a widget.

    ``on_busy(bool)`` is called when a run starts and when it has ended;
    ``on_outcome(outcome)`` once per run with its :class:`JobOutcome`.
    """

    def __init__(self, on_busy: Callable[[bool], None]):
        self._on_busy = on_busy
        self._worker = None
        self._token = CancelToken()
        self.progress_bar = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, op, data, *, description: str, source_limits, on_outcome):
        """Start ``op`` on ``data``; returns the (started) worker."""
        self._token = token = CancelToken()
        self.progress_bar = _RunProgress(total=0, desc=description, cancel_callback=self.cancel)
        worker = GeneratorWorker(filter_job, op, data, token, source_limits)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(on_outcome)
        # filter_job never raises; anything that still escapes is reported once
        worker.errored.connect(lambda exc: on_outcome(JobOutcome(error=exc)))
        worker.aborted.connect(token.cancel)  # napari quitting its workers
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._on_busy(True)
        worker.start()
        return worker

    def cancel(self, *_) -> None:
        """Stop the run: the worker ends within ~50 ms, the compute right after."""
        self._token.cancel()

    def _on_progress(self, step) -> None:
        done, total = step
        bar = self.progress_bar
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
        if done != bar.n:
            bar.update(done - bar.n)

    def _on_finished(self) -> None:
        self._worker = None
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self._on_busy(False)
