"""The demo org of config/loyalty.yaml: its file (shipped in the package, so that an installed copy has it
too: `demo_loyalty.yaml` is a link to config/loyalty.yaml), its client's credentials and its programs."""

import base64
from importlib import resources
from pathlib import Path

DEMO_CONFIG = Path(str(resources.files("devtools").joinpath("demo_loyalty.yaml")))
CREDENTIALS = "till.docdemo:demo-password"  # the demo client
AUTH_HEADERS = {"Authorization": "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()}
DEMO_PROGRAMS = (973, 983)
