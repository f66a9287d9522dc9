"""gradprop: property-based gradient verification for hand-written numpy layers."""
import os as _os
import sys as _sys

__version__ = "0.1.0"

if _sys.argv[:1] == ["-m"] and not _sys.flags.safe_path:
    # ``python -m gradprop.cli`` put the working folder first on sys.path (the console script and
    # ``python -P`` do not): take it off before gradprop imports anything, so that a student's
    # csv.py or tomllib.py in the folder an instructor grades from is never imported here
    _here = _os.getcwd()
    _sys.path[:] = [p for p in _sys.path if p not in ("", _here)]
