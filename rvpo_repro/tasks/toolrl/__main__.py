"""`python -m rvpo_repro.tasks.toolrl`: write the generated fixture, or split a raw JSON as upstream."""

from rvpo_repro.tasks.toolrl.task import main

main()
