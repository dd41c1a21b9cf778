"""The live service: live sessions with their hosts, brands and showcase; pins, flash deals,
payment terms and audience tallies on the live's timeline (topic ``shopstream.live.session``)."""
