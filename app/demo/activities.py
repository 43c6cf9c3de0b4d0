"""The demo's activities: calls, emails, meetings and tasks on the business days each
seller worked, many of them logged against one of the seller's live deals."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from app.demo.basis import ACTIVITY_TYPES, DAY, HOUR, StrArray, ids, touched, utc
from app.demo.deals import Deals, Grid, business_days
from app.demo.org import Org, pick_accounts

_ACTIVITY_MIX: Final = (0.42, 0.30, 0.16, 0.12)
# Meetings are the activities most often logged against a specific opportunity.
_LINK_SHARE: Final = (0.45, 0.55, 0.85, 0.60)
_SUBJECTS: Final = (
    ("Discovery call", "Follow-up call", "Cold call", "Check-in call"),
    ("Intro email", "Follow-up email", "Pricing details", "Case study sent"),
    ("Product demo", "Discovery meeting", "Negotiation meeting", "Executive briefing"),
    ("Update opportunity", "Prepare proposal", "Send contract", "Research account"),
)


def build_activities(
    rng: np.random.Generator,
    org: Org,
    grid: Grid,
    deals: Deals,
    accounts: StrArray,
) -> pd.DataFrame:
    seller, day = business_days(rng, grid, grid.activities)
    n = seller.size
    team = org.team[seller]
    kind = rng.choice(len(ACTIVITY_TYPES), n, p=_ACTIVITY_MIX)
    # Meetings sit in core hours; calls, emails and tasks fill the whole working day.
    opens = np.where(kind == 2, 9 * HOUR, 8 * HOUR)
    closes = np.where(kind == 2, 17 * HOUR, 18 * HOUR)
    local = opens + (rng.random(n) * (closes - opens)).astype(np.int64)
    cutoff = org.cutoff_s[seller]
    occurred_s = np.minimum(day * DAY + local + org.shift_s[team], cutoff)

    # Link to one of the seller's most recently created deals that is still alive then.
    stride = np.int64(1) << np.int64(34)
    by_owner = np.lexsort((deals.created_s, deals.seller))
    deal_key = deals.seller[by_owner] * stride + deals.created_s[by_owner]
    pos = np.searchsorted(deal_key, seller * stride + occurred_s, side="right") - 1
    pos = pos - rng.integers(0, 4, n)
    safe = np.clip(pos, 0, max(by_owner.size - 1, 0))
    linked = rng.random(n) < np.array(_LINK_SHARE)[kind]
    if by_owner.size:
        deal_idx = by_owner[safe]
        linked &= (pos >= 0) & (deals.seller[deal_idx] == seller)
        linked &= deals.end_s[deal_idx] >= occurred_s
    else:
        deal_idx = safe
        linked[:] = False

    account = np.where(
        linked,
        deals.account[deal_idx] if by_owner.size else "",
        pick_accounts(rng, accounts, team, org.currency.size),
    )
    template = np.array(_SUBJECTS)[kind, rng.integers(0, 4, n)]
    subject = np.char.add(np.char.add(template, " - "), account.astype(str))
    deal_ref = np.full(n, None, dtype=object)
    if by_owner.size:
        deal_ref[linked] = deals.external_id[deal_idx[linked]]
    tail = np.where(kind == 3, rng.integers(0, 2 * DAY, n), rng.integers(0, 2 * HOUR, n))
    modified_s = touched(rng, occurred_s, tail, cutoff)

    order = np.lexsort((seller, occurred_s))
    return pd.DataFrame(
        {
            "external_id": ids("A", n, 7),
            "owner_key": org.key[seller[order]],
            "type": np.array(ACTIVITY_TYPES)[kind[order]],
            "occurred_at": utc(occurred_s[order]),
            "deal_external_id": deal_ref[order],
            "subject": subject[order],
            "modified_at": utc(modified_s[order]),
        }
    )
