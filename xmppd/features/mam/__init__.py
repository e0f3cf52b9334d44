"""Message archive management (XEP-0313): the archiving handler and the query engine."""
