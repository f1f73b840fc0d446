"""`mmagent eval SUITE...`: run suites of tasks on one or more models and print a score table.

suites.py    the suite file format, shipped suites and loading
pictures.py  the test pictures the `images` suite asks about, drawn with PIL
prepare.py   the eval's own workspace: corpus knowledge base, pictures, tools
oracle.py    model specs, and the per-task oracle script behind `--llm scripted`
scoring.py   metrics over result records, and the table
command.py   the click command

Tasks run through `apps.tasks` (the code behind `mmagent run`); see docs/eval.md.
"""
