"""The parts of one announcement run, in the order they happen: ``preflight`` (render and
check everything, send nothing), ``planning`` (record the rows), ``delivery`` (workers
claiming, sending and recording; ``retry`` decides what is tried again), ``control``
(stopping a run). ``outagecomms.announcer.Announcer`` puts them together."""
