"""Reads a TensorBoard log directory back with TensorBoard's own readers and prints JSON, for
tests/trackers.rs: per run directory, every scalar series as the event accumulator serves it
(after its restart purges), the number of events its raw loader reads from the files (it stops
silently at a bad CRC, so the tests count), and the HParams as tbparse reads them.

    python read_tensorboard.py LOGDIR
"""

import glob
import json
import os
import sys

from tbparse import SummaryReader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader


def main(logdir):
    out = {}
    for run in sorted(os.listdir(logdir)):
        path = os.path.join(logdir, run)
        acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        scalars = {
            tag: [[e.step, e.value] for e in acc.Scalars(tag)]
            for tag in acc.Tags()["scalars"]
        }
        events = sum(
            sum(1 for _ in EventFileLoader(f).Load())
            for f in sorted(glob.glob(os.path.join(path, "events.out.tfevents.*")))
        )
        hparams = SummaryReader(path).hparams
        out[run] = {
            "scalars": scalars,
            "events": events,
            "hparams": {r.tag: r.value for r in hparams.itertuples()},
        }
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
