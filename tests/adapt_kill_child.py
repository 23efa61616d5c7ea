"""Child process of test_adapt_kill.py: adapt and save a bundle in a loop until killed."""
import sys

import numpy as np

from rbe_edge import Adapter


def main(bundle_dir: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 16)).astype(np.float32)
    y = rng.integers(0, 8, 16)
    with Adapter(bundle_dir) as adapter:
        print("ready", flush=True)
        for round_number in range(1_000_000):
            adapter.fit(x, y, steps=1, batch_size=8, seed=round_number, progress=False)
            adapter.save()
            print(f"saved {round_number}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
