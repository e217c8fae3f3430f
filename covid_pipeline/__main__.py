"""`python -m covid_pipeline ...` is `covid-pipeline ...`, for when pip's script folder is not on PATH."""

import sys

from covid_pipeline.cli import main

sys.exit(main())
