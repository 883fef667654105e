from orchestrator.sandbox.host import main

main()
