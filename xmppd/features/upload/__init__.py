# -*- test-case-name: tests.test_upload -*-
"""
HTTP File Upload (XEP-0363, issue 15 item 5): the upload service of each
served domain (L{xmppd.features.upload.service}) hands out slots, signed
URLs that the HTTP service (L{xmppd.http.upload}) takes a file at and
serves it from; its settings are the C{[upload]} section
(L{xmppd.features.upload.settings}).
"""
