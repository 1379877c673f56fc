"""Sends one of every Segment call through segment-analytics-python to a Sightline server,
then prints the calls it made as JSON so the test can compare them with the log.
usage: python3 send.py HOST WRITE_KEY RUN_ID
"""
import datetime
import json
import sys

import segment.analytics as analytics

host, write_key, run = sys.argv[1:4]
errors = []
analytics.write_key = write_key
analytics.host = host
analytics.gzip = True
analytics.max_retries = 2
analytics.on_error = lambda error, items: errors.append(str(error))

user = f"py-user-{run}"
anon = f"py-anon-{run}"
when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
analytics.track(user, "Order Completed", {"orderId": "o-2", "total": 5.5, "tags": ["x", "y"]}, timestamp=when)
analytics.identify(user, {"email": "bob@example.com", "age": 41}, anonymous_id=anon)
analytics.page(user, "Docs", "Install", {"url": "https://example.com/docs"})
analytics.screen(user, "App", "Home", {"variant": "a"})
analytics.group(user, f"org-{run}", {"name": "Acme"})
analytics.alias(anon, user)
analytics.flush()
analytics.shutdown()
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)

calls = [
    {"type": "track", "userId": user, "event": "Order Completed",
     "properties": {"orderId": "o-2", "total": 5.5, "tags": ["x", "y"]}, "timestamp": when.isoformat()},
    {"type": "identify", "userId": user, "anonymousId": anon, "traits": {"email": "bob@example.com", "age": 41}},
    {"type": "page", "userId": user, "category": "Docs", "name": "Install",
     "properties": {"url": "https://example.com/docs"}},
    {"type": "screen", "userId": user, "category": "App", "name": "Home", "properties": {"variant": "a"}},
    {"type": "group", "userId": user, "groupId": f"org-{run}", "traits": {"name": "Acme"}},
    {"type": "alias", "userId": user, "previousId": anon},
]
print(json.dumps(calls))
