from multibackend.cli import main

raise SystemExit(main())
