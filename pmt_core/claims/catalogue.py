"""Every claim module, imported once so that its claims register.

Adding a claim touches its module here (the measurement function and its
``@claim`` declaration) and nothing else; a new module is added to this list.
"""

from __future__ import annotations

from pmt_core.claims import (  # noqa: F401 - imported for their registrations
    accuracy,
    data,
    lrp,
    model,
    power,
    relevance,
    relevance_use,
    sanity,
    scattering,
)
