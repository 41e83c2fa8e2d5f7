"""What the initiator and the processor must agree on, written once.

The source lives in common/binpay_common; devtools/sync_common.py copies it, with the contract files
of contracts/, into each service folder (initiator/binpay_common, processor/binpay_common) so that
each image still builds from its own folder (`cd initiator && docker build .`). `make lint` fails when
a copy differs from the source. Edit the source, then run `python devtools/sync_common.py`.
"""
