"""The ``idc-viewer`` command: the GUI (no subcommand) and the headless engine.

Subcommands
-----------
``analyze SLIDE... --out DIR``
    Analyse slides (folders expand to the slides inside them) and write, per slide,
    ``<stem>.patches.csv``, ``<stem>.regions.csv``, ``<stem>.regions.geojson`` and
    ``<stem>.provenance.json`` (``<stem>``: the file name minus its last suffix; a second
    slide of the same stem gets ``<stem>~2``), replaced as one set: all old or all new, the
    provenance naming each file's SHA-256. A slide that fails is reported in one line and
    skipped; the exit status is 1 if any slide failed. A slide where the tissue detector finds
    nothing that looks like H&E (empty glass, fluorescence) is reported as a warning: only its
    provenance (with the warning) is written, and it does not count as a failure. With
    ``--workers N`` or ``--scheduler ADDRESS`` the slides run on a Dask cluster and
    ``DIR/cohort.csv`` sums them up (:mod:`idc_viewer.engine.cohort`).
``gradcam SLIDE --x X --y Y -o OUT.png``
    Grad-CAM figure of the patch containing the level-0 point (X, Y).
``gradcam SLIDE --region X Y W H -o OUT.png``
    The viewer's Grad-CAM layer over a level-0 rectangle (every tissue patch's map).
``info SLIDE``
    Format, dimensions, pyramid levels, µm/px, and what the engine would do.

User errors (unreadable slide, missing µm/px, refused model) print one ``error: ...`` line
on stderr and give exit status 1; never a traceback. Ctrl-C during ``analyze`` keeps what was
done (a rerun resumes) and exits with 130; SIGTERM does the same and exits with 143.

Modules: :mod:`.main` (entry point and dispatch), :mod:`.args` (the parser),
:mod:`.errors` (exit codes and the one error formatter), :mod:`.inputs` (models and slides the
commands read), :mod:`.progress` (the progress bar), and one module per command:
:mod:`.analyze`, :mod:`.gradcam`, :mod:`.info`.
"""

import os

# Before anything can import TensorFlow: silence its C++ and Python start-up logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
# OpenCV logs decoder complaints ("[ WARN:0] ... grfmt_png") on stderr; our error line says it.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
