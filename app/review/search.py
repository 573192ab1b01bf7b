"""The queue's search box: path text plus a few ``key:value`` and ``p`` terms.

    mouth                       samples whose path contains "mouth"
    status:fixed                review status (to-review, confirmed, fixed, excluded;
                                several with commas: status:fixed,confirmed)
    p>0.8   p>=80%   p<0.2      the run's P(wrong), as a fraction or a percentage
    point:mouth_inner_2         samples whose worst landmark is this one (name or index)
    split:val   issue:swap      the split; the run's named likely error
    is:conflict                 samples two people changed in copies that were merged

Terms combine with AND. :func:`parse` returns the filter's fields and the terms it
could not read, each with the reason, so the box can say what it ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STATUS_WORDS = {"to-review": "unreviewed", "toreview": "unreviewed", "unreviewed": "unreviewed",
                "open": "unreviewed", "confirmed": "confirmed", "right": "confirmed",
                "fixed": "fixed", "excluded": "excluded"}
SPLITS = ("train", "val", "test")
_PROB = re.compile(r"^p(?:\(wrong\))?(>=|<=|>|<)([0-9]*\.?[0-9]+)(%?)$", re.IGNORECASE)


@dataclass
class Search:
    fields: dict[str, Any] = field(default_factory=dict)  # QueueFilter fields
    errors: list[str] = field(default_factory=list)  # one line per term not understood


def parse(text: str, keypoints: Sequence[str] = (),
          issues: Sequence[str] = ()) -> Search:
    out = Search()
    words: list[str] = []
    statuses: list[str] = []
    for term in text.split():
        key, sep, value = term.partition(":")
        key = key.lower()
        m = _PROB.match(term)
        if m:
            op, num, pct = m.groups()
            p = float(num) / (100.0 if pct or float(num) > 1.0 else 1.0)
            if not 0.0 <= p <= 1.0:
                out.errors.append(f"{term}: a probability is between 0 and 1 (or 0 and 100 %)")
                continue
            out.fields["min_prob" if op.startswith(">") else "max_prob"] = p
        elif sep and key == "status":
            for v in value.lower().split(","):
                if v in STATUS_WORDS:
                    statuses.append(STATUS_WORDS[v])
                else:
                    out.errors.append(f"{term}: no status {v!r} (to-review, confirmed, fixed, "
                                      "excluded)")
        elif sep and key in ("point", "landmark"):
            idx = _landmark(value, keypoints)
            if idx is None:
                out.errors.append(f"{term}: no landmark {value!r} in this project")
            else:
                out.fields["landmark"] = idx
        elif sep and key == "split":
            if value.lower() in SPLITS:
                out.fields["split"] = value.lower()
            else:
                out.errors.append(f"{term}: no split {value!r} (train, val, test)")
        elif sep and key == "is":
            if value.lower() in ("conflict", "conflicts", "conflicted"):
                out.fields["conflicts"] = True
            else:
                out.errors.append(f"{term}: 'is:' takes 'conflict'")
        elif sep and key == "issue":
            if issues and value not in issues:
                out.errors.append(f"{term}: no issue {value!r} ({', '.join(issues)})")
            else:
                out.fields["issue"] = value
        else:
            words.append(term)
    if statuses:
        out.fields["statuses"] = tuple(dict.fromkeys(statuses))
    out.fields["search"] = " ".join(words)
    return out


def _landmark(value: str, keypoints: Sequence[str]) -> int | None:
    if value.isdigit():
        i = int(value)
        return i if 0 <= i < len(keypoints) or not keypoints else None
    low = [k.lower() for k in keypoints]
    if value.lower() in low:
        return low.index(value.lower())
    return None
