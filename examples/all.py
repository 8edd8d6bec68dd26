"""Every example in one app: `scripts/serve-examples` serves this."""

from examples.cart import cart, checkout
from examples.travel import trips
from examples.wallet import transfers, wallet
from pysdk import app

application = app([cart, checkout, wallet, transfers, trips])
