"""A seeded synthetic multimodal catalogue: the embedded default data of sidkit.

Latent item clusters drive all three views, so a tokenizer that learns good SIDs
puts same-cluster items under shared code prefixes:

* **text**: a title and description drawn from the cluster's theme vocabulary
  (real English words, so a sentence encoder sees the structure);
* **image**: a small PNG whose hue and stripe pattern come from the cluster (written
  to ``image_dir``; a share ``missing_image_rate`` of items has no image at all,
  which is the documented "no image" case, never a placeholder);
* **behaviour**: users prefer one or two clusters; item popularity follows a power
  law (Zipf exponent ``popularity_exponent``), giving a long tail; each user's next
  item is, with probability ``sequential_strength``, a neighbour of the previous one
  in its cluster's order (a planted sequential signal).

Drift with a known magnitude, for monitoring tests and demos (all zero by default, and
then the output is exactly the undrifted catalogue):

* ``new_items``: items of an emerging theme (cluster ``n_clusters``, a vocabulary no
  earlier item uses) appended to the catalogue;
* ``popularity_shift``: the share of users whose favourite cluster becomes the trending
  one (the emerging theme when there are new items, else cluster 0);
* ``content_shift``: the share of existing items whose text is rewritten in the next
  cluster's vocabulary (their behaviour is unchanged);
* ``user_seed``: resample the users only (same items): a "next week" with no drift.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sidkit.settings import state_dir
from sidkit.data.schema import Catalogue, interactions_frame, items_frame, order_interactions

THEMES: tuple[tuple[str, ...], ...] = (
    ("lipstick", "matte", "rose", "lip", "gloss", "velvet", "berry", "balm"),
    ("shampoo", "hair", "scalp", "curl", "conditioner", "keratin", "shine", "frizz"),
    ("sunscreen", "spf", "uv", "beach", "protection", "waterproof", "sport", "zinc"),
    ("perfume", "fragrance", "floral", "musk", "vanilla", "eau", "scent", "citrus"),
    ("nail", "polish", "lacquer", "gel", "manicure", "coat", "glitter", "cuticle"),
    ("moisturizer", "cream", "hydrating", "night", "face", "hyaluronic", "dry", "skin"),
    ("mascara", "lash", "volume", "eyeliner", "brow", "smudge", "curling", "black"),
    ("razor", "shave", "beard", "blade", "trimmer", "aftershave", "foam", "men"),
    ("brush", "makeup", "blending", "foundation", "powder", "bristle", "kabuki", "sponge"),
    ("soap", "bath", "body", "wash", "lavender", "scrub", "shower", "oatmeal"),
    ("acne", "cleanser", "salicylic", "pore", "blemish", "toner", "clear", "oil"),
    ("serum", "vitamin", "retinol", "anti", "aging", "wrinkle", "collagen", "firming"),
)
ADJECTIVES = ("classic", "deluxe", "travel", "mini", "professional", "organic", "natural", "premium", "daily", "gentle")


@dataclass(frozen=True)
class SyntheticConfig:
    n_items: int = 600
    n_users: int = 500
    n_clusters: int = 8
    min_seq_len: int = 5
    max_seq_len: int = 25
    popularity_exponent: float = 1.0
    sequential_strength: float = 0.6
    cluster_stickiness: float = 0.85
    with_images: bool = True
    missing_image_rate: float = 0.1
    image_size: int = 64
    image_dir: str | None = None   # None: <state dir>/synthetic/<config fingerprint>
    seed: int = 0
    new_items: int = 0
    popularity_shift: float = 0.0
    content_shift: float = 0.0
    user_seed: int | None = None

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def generate(cfg: SyntheticConfig) -> tuple[Catalogue, np.ndarray]:
    """The catalogue and each item's latent cluster (for tests of what SIDs capture)."""
    if cfg.n_clusters > len(THEMES):
        raise ValueError(f"n_clusters must be <= {len(THEMES)} (one vocabulary theme per cluster)")
    if cfg.new_items and cfg.n_clusters + 1 > len(THEMES):
        raise ValueError(f"new_items needs n_clusters < {len(THEMES)} (the new items get a theme of their own)")
    if not (0 <= cfg.popularity_shift <= 1 and 0 <= cfg.content_shift <= 1):
        raise ValueError("popularity_shift and content_shift are shares in [0, 1]")
    if cfg.min_seq_len < 3 or cfg.max_seq_len < cfg.min_seq_len:
        raise ValueError("need 3 <= min_seq_len <= max_seq_len (leave-one-out needs train, valid, test)")
    rng = np.random.default_rng(cfg.seed)
    clusters = rng.integers(0, cfg.n_clusters, size=cfg.n_items)
    ids = [f"item{idx:05d}" for idx in range(cfg.n_items)]

    # text
    titles, descs = [], []
    for idx in range(cfg.n_items):
        words = THEMES[clusters[idx]]
        picks = rng.choice(len(words), size=3, replace=False)
        titles.append(f"{ADJECTIVES[rng.integers(len(ADJECTIVES))]} {words[picks[0]]} {words[picks[1]]} {words[picks[2]]}")
        d = rng.choice(len(words), size=4, replace=False)
        descs.append("A " + " ".join(words[k] for k in d) + " product.")

    # images
    image_paths: list[str | None] = [None] * cfg.n_items
    if cfg.with_images:
        out = Path(cfg.image_dir or state_dir() / "synthetic") / cfg.fingerprint()
        out.mkdir(parents=True, exist_ok=True)
        has_image = rng.random(cfg.n_items) >= cfg.missing_image_rate
        for idx in range(cfg.n_items):
            if has_image[idx]:
                path = out / f"{ids[idx]}.png"
                if not path.exists():
                    _draw_image(path, clusters[idx], cfg, np.random.default_rng([cfg.seed, idx]))
                image_paths[idx] = str(path.resolve())

    # behaviour
    popularity = 1.0 / np.arange(1, cfg.n_items + 1) ** cfg.popularity_exponent
    popularity = popularity[rng.permutation(cfg.n_items)]

    # injected drift: its own random stream, so that zero drift leaves everything above unchanged
    drng = np.random.default_rng([cfg.seed, 7])
    if cfg.content_shift:
        for idx in np.flatnonzero(drng.random(cfg.n_items) < cfg.content_shift):
            words = THEMES[(clusters[idx] + 1) % cfg.n_clusters]
            picks = drng.choice(len(words), size=3, replace=False)
            titles[idx] = f"{ADJECTIVES[drng.integers(len(ADJECTIVES))]} {words[picks[0]]} {words[picks[1]]} {words[picks[2]]}"
            descs[idx] = "A " + " ".join(words[k] for k in drng.choice(len(words), size=4, replace=False)) + " product."
    if cfg.new_items:
        new = cfg.n_clusters
        clusters = np.concatenate([clusters, np.full(cfg.new_items, new)])
        for k in range(cfg.new_items):
            idx = cfg.n_items + k
            ids.append(f"item{idx:05d}")
            words = THEMES[new]
            picks = drng.choice(len(words), size=3, replace=False)
            titles.append(f"{ADJECTIVES[drng.integers(len(ADJECTIVES))]} {words[picks[0]]} {words[picks[1]]} {words[picks[2]]}")
            descs.append("A " + " ".join(words[j] for j in drng.choice(len(words), size=4, replace=False)) + " product.")
            path = None
            if cfg.with_images and drng.random() >= cfg.missing_image_rate:
                path = out / f"{ids[idx]}.png"
                if not path.exists():
                    _draw_image(path, new, cfg, np.random.default_rng([cfg.seed, idx]))
                path = str(path.resolve())
            image_paths.append(path)
        popularity = np.concatenate([popularity, 1.0 / np.arange(1, cfg.new_items + 1) ** cfg.popularity_exponent])
    n_total = len(ids)
    trending = cfg.n_clusters if cfg.new_items else 0
    members = [np.flatnonzero(clusters == c) for c in range(cfg.n_clusters + (1 if cfg.new_items else 0))]
    if cfg.user_seed is not None:
        rng = np.random.default_rng([cfg.user_seed, 1])
    rows = []
    t0 = 880_000_000
    for u in range(cfg.n_users):
        prefs = rng.choice(cfg.n_clusters, size=min(2, cfg.n_clusters), replace=False)
        if cfg.popularity_shift and drng.random() < cfg.popularity_shift:
            prefs[0] = trending
        length = int(rng.integers(cfg.min_seq_len, cfg.max_seq_len + 1))
        prev = None
        t = t0 + int(rng.integers(0, 10_000_000))
        for _ in range(length):
            if prev is not None and rng.random() < cfg.sequential_strength:
                group = members[clusters[prev]]
                where = int(np.searchsorted(group, prev))
                item = int(group[(where + 1) % len(group)])
            else:
                c = prefs[0] if rng.random() < cfg.cluster_stickiness else rng.choice(prefs if rng.random() < 0.5 else cfg.n_clusters)
                group = members[int(c)] if len(members[int(c)]) else np.arange(n_total)
                p = popularity[group] / popularity[group].sum()
                item = int(rng.choice(group, p=p))
            rows.append({"user_id": f"user{u:05d}", "item_id": ids[item], "timestamp": t,
                         "rating": float(rng.integers(3, 6)), "_file": "synthetic", "_row": len(rows) + 1})
            t += int(rng.integers(60, 86_400))
            prev = item
    items = items_frame({
        "item_id": ids, "title": titles, "description": descs,
        "attributes": [f"Collection: {THEMES[c][0]} line" for c in clusters],
        "image_path": image_paths, "_file": ["synthetic"] * n_total, "_row": list(range(1, n_total + 1)),
    })
    cat = Catalogue(name="synthetic", items=items, interactions=order_interactions(interactions_frame(rows)),
                    source=f"synthetic seed={cfg.seed} config={cfg.fingerprint()}")
    return cat, clusters


def generate_catalogue(cfg: SyntheticConfig, name: str = "synthetic") -> Catalogue:
    cat, _ = generate(cfg)
    cat.name = name
    return cat


def _draw_image(path: Path, cluster: int, cfg: SyntheticConfig, rng: np.random.Generator) -> None:
    from PIL import Image

    s = cfg.image_size
    hue = cluster / max(cfg.n_clusters, 1)
    base = np.array(_hsv_to_rgb(hue, 0.7, 0.9)) * 255
    yy, xx = np.mgrid[0:s, 0:s]
    angle = np.pi * (cluster % 4) / 4
    freq = 2 + cluster % 3
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) / s)
    img = base[None, None, :] * (0.55 + 0.45 * stripes[..., None])
    img += rng.normal(0, 12, size=img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)
