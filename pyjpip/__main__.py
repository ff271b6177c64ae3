from pyjpip.cli import main

raise SystemExit(main())
