"""Reviewing runs after the fact, from ML Metadata: the Review API (runs.py), the history and
compare commands (cli.py), the review sheet of mistakes to tag (sheet.py) and the end-of-run
summary (summary.py). It reads what the pipelines wrote; nothing here defines a pipeline.

    from blindspot import review
    r = review.Review('outputs')
    run = r.run()            # latest
"""

from blindspot.review.runs import (
    Review,
    ReviewError,
    Run,
    compare_runs,
    connect,
    get_run,
    list_runs,
)

__all__ = ['Review', 'ReviewError', 'Run', 'compare_runs', 'connect', 'get_run', 'list_runs']
