"""Everything that speaks WeChat, and nothing about the bank.

Feature packages plug in through the callback's dispatch table and the client
factory; this package imports none of them.
"""
