from orchestrator.channels.sandboxes import main

main()
