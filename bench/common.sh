# common.sh: sourced by the bench drivers. Sets here, BUILD, PYTHON and checks
# that the bridle benchmark binary $1 is built and that $PYTHON has PyTorch.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${BUILD:-build}"
PYTHON="${PYTHON:-python3}"
bridle_bin="$BUILD/bench/$1"
driver="$(basename "$0")"

if [[ ! -x "$bridle_bin" ]]; then
  echo "$driver: no $bridle_bin; build it: ninja -C $BUILD $1" >&2
  exit 1
fi
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "$driver: $PYTHON cannot import torch; set PYTHON to one that can" >&2
  exit 1
fi
