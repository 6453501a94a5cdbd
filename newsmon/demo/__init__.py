"""An offline demo news site and the small HTTP server that serves it.

`newsmon.demo.server.SiteServer` serves `demo_site_root()` (or any folder) on 127.0.0.1, filling the
`{{BASE_URL}}` and `{{DATE:...}}` placeholders in its feeds and pages so that the stories always look recent.
Run `python -m newsmon.demo.server` to browse the site or point newsmon at it by hand.
"""
