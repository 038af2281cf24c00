from realtime_hmr.cli import main

raise SystemExit(main())
