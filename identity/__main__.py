from identity.cli import main

main()
