from tinystore.cli import main

raise SystemExit(main())
