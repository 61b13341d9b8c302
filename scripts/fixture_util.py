"""What the fixture scripts share: writing a fixture as JSON the same way each time."""

import json
import os


def write_fixture(path, doc):
    """Writes doc to path as JSON (indent 1, a final newline) and says so."""
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path))
