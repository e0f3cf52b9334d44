# -*- test-case-name: tests.test_pubsub_service -*-
"""
Publish-subscribe (XEP-0060): the C{pubsub.} service of each served domain
and the engine PEP (XEP-0163) builds on.

  - L{settings}: the C{[pubsub]} configuration section and its limits;
  - L{nodeconfig}: node configuration fields, defaults, checks, forms;
  - L{access}: the access models, decided by a pluggable object;
  - L{errors}: the XEP-0060 error conditions;
  - L{fanout}: notifications serialized once, sent in bounded batches;
  - L{engine}: nodes, items, subscriptions, affiliations, permissions;
  - L{protocol}: wokkel's pubsub protocol layer and what it lacks;
  - L{resource}: wokkel's C{IPubSubResource} answered by the engine;
  - L{service}: the route of C{pubsub.example.org} and the feature's
    C{makeService} / C{makeHandler}.
"""
