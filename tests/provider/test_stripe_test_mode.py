"""The second run of this suite: against Stripe's test mode when STRIPE_TEST_SECRET_KEY=sk_test_... is set."""

from __future__ import annotations

import pytest
from conftest import STRIPE_KEY


@pytest.mark.skipif(
    STRIPE_KEY.startswith("sk_test_"), reason="the suite also runs against Stripe's test mode ([stripe] ids)"
)
def test_stripe_test_mode_run():
    pytest.skip("STRIPE_TEST_SECRET_KEY=sk_test_... not set: the provider-contract suite ran against the sandbox only")
