"""A runtime app with no services, for the remote workloads (W1R, W4R): every handler
runs in a deployment process (`stead deployment serve examples.cart:application`)."""

from pysdk import app

application = app([])
