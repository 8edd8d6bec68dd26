"""An app with no services: a runtime whose handlers all run in deployments."""

from pysdk import app

application = app([])
