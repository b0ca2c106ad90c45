"""A widget's background runs: start, progress, cancel, outcome.

One :class:`RunController` per widget. It starts a napari thread worker on
:func:`~napari_denoise._jobs.filter_job`, shows a progress bar with a cancel
button in napari's activity dock, cancels through the run's
:class:`~napari_denoise._scheduler.CancelToken`, and hands the
:class:`~napari_denoise._jobs.JobOutcome` to the widget, once.

Progress is told honestly (:class:`~napari_denoise._run_time.ProgressMeter`):
a percentage with the time elapsed and left when the filter reports steps;
for a library routine that cannot report inside a long call, a busy bar
whose text gives the elapsed time against the estimate. The text is
refreshed every second, in the activity dock and through ``on_status``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from napari.qt.threading import GeneratorWorker
from napari.utils import cancelable_progress
from qtpy.QtCore import QTimer

from ._jobs import JobOutcome, filter_job
from ._run_time import ProgressMeter, format_duration
from ._scheduler import CancelToken

__all__ = ["RunController", "STATUS_INTERVAL_MS"]

#: The elapsed / left times are refreshed this often while a run works.
STATUS_INTERVAL_MS = 1000
# The activity dock's bar is moved at most this often (napari processes
# Qt events on every move).
_BAR_INTERVAL_S = 0.1


class _RunProgress(cancelable_progress):
    """Progress bar whose cancel button (activity dock) cancels the run at once,
    and whose time column says how long the run has worked and has left.

    ``cancelable_progress`` only calls ``cancel_callback`` while it is
    iterated; the controller updates it by hand, so the callback is called
    here. The time text is an extra ``format_dict`` entry (tqdm's documented
    way to add fields to ``bar_format``); napari's activity dock shows what
    follows the bar's last ``|``.
    """

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {status}"

    def __init__(self, *args, meter: ProgressMeter | None = None, **kwargs):
        # without a meter (the batch dock counts files itself): tqdm's own format
        self.meter = meter
        if meter is not None:
            kwargs["bar_format"] = self.BAR_FORMAT
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        d = super().format_dict
        d["status"] = self.meter.time_text() if getattr(self, "meter", None) is not None else ""
        return d

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


class RunController:
    """Runs one op at a time in the background for a widget.

    ``on_busy(bool)`` is called when a run starts and when it has ended;
    ``on_status(text)`` with the progress in words (at least once a second);
    ``on_outcome(outcome)`` once per run with its :class:`JobOutcome`.
    """

    def __init__(self, on_busy: Callable[[bool], None], on_status: Callable[[str], None] | None = None):
        self._on_busy = on_busy
        self._on_status = on_status or (lambda text: None)
        self._worker = None
        self._token = CancelToken()
        self.progress_bar = None
        self.meter: ProgressMeter | None = None
        self._reporting = False  # a run is going and has not handed over its outcome
        self.last_elapsed: float | None = None
        self._description = ""
        self._last_bar_move = 0.0
        self._timer = QTimer()
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self, op, data, *, description: str, source_limits, on_outcome, estimate=None):
        """Start ``op`` on ``data``; returns the (started) worker.

        ``estimate`` (a :class:`~napari_denoise._run_time.RunEstimate`) gives
        the expected time and whether the filter can report steps.
        """
        self._token = token = CancelToken()
        self.meter = meter = ProgressMeter(estimate)
        self._description = description
        self.progress_bar = _RunProgress(total=0, desc=description, cancel_callback=self.cancel, meter=meter)
        worker = GeneratorWorker(filter_job, op, data, token, source_limits)
        worker.yielded.connect(self._on_progress)
        self._reporting = True

        def ended(outcome):
            # No "Running: ..." after this: a timer tick or a queued step
            # would otherwise overwrite the widget's "Done in ..." line.
            self._reporting = False
            self._timer.stop()
            on_outcome(outcome)

        worker.returned.connect(ended)
        # filter_job never raises; anything that still escapes is reported once
        worker.errored.connect(lambda exc: ended(JobOutcome(error=exc)))
        worker.aborted.connect(token.cancel)  # napari quitting its workers
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._on_busy(True)
        self._timer.start()
        self._tick()
        worker.start()
        return worker

    def cancel(self, *_) -> None:
        """Stop the run: the worker ends within ~50 ms, the compute right after."""
        self._token.cancel()

    def _on_progress(self, step) -> None:
        done, total = step
        meter, bar = self.meter, self.progress_bar
        if meter is None or bar is None or not self._reporting:
            return
        was_busy = meter.busy
        moved = meter.update(done, total)
        if meter.busy:
            return  # the bar stays "busy" (indeterminate); _tick tells the time
        if was_busy or bar.total != total:
            bar.set_description(self._description)
            bar.total = total
        now = time.monotonic()
        if moved and (now - self._last_bar_move >= _BAR_INTERVAL_S or done >= total):
            self._last_bar_move = now
            bar.update(done - bar.n)
            # napari's progress bar processes Qt events while it redraws: the
            # run may have ended (and said "Done in ...") meanwhile
            if self._reporting:
                self._on_status(meter.text())

    def _tick(self) -> None:
        """Once a second: the elapsed and remaining time, in the widget and the activity dock."""
        meter, bar = self.meter, self.progress_bar
        if meter is None or bar is None or not self._reporting:
            return
        if meter.busy:
            bar.set_description(f"{self._description} — {meter.time_text()}")
        else:
            bar.refresh()
        self._on_status(meter.text())

    def _on_finished(self) -> None:
        self._worker = None
        self._timer.stop()
        if self.meter is not None:
            self.last_elapsed = self.meter.elapsed
        if self.progress_bar is not None:
            self.progress_bar.close()
            self.progress_bar = None
        self._on_busy(False)

    @staticmethod
    def describe_elapsed(seconds: float | None) -> str:
        return "" if seconds is None else format_duration(seconds)

    def shutdown(self) -> None:
        """The widget is gone: cancel and stop the status timer."""
        self.cancel()
        try:
            self._timer.stop()
        except RuntimeError:  # the QTimer may be deleted already
            pass
