from benchbench.report.cli import main

main()
