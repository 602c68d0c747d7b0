"""Feature code of the churn use case (see mlops.core.feature_repo). One function per feature."""

from __future__ import annotations

from mlops.core.feature_repo import feature


@feature
def charges_per_contact(batch):
    """Monthly charges per support contact in the last 30 days (+1, so no contact is not a division by zero)."""
    import pandas as pd

    charges = pd.to_numeric(batch["monthly_charges"], errors="coerce")
    contacts = pd.to_numeric(batch["support_contacts_30d"], errors="coerce").clip(lower=0)
    return charges / (contacts + 1)


@feature
def tenure_band(batch):
    """Tenure in bands a person reads: new (< 6 months), settling (< 24), loyal."""
    import numpy as np
    import pandas as pd

    months = pd.to_numeric(batch["tenure_months"], errors="coerce")
    return pd.Series(
        np.select([months < 6, months < 24], ["new", "settling"], "loyal"), index=batch.index
    ).where(months.notna(), None)
