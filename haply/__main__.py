from haply.cli import main

raise SystemExit(main())
