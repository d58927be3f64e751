"""Platform clients that take social posts down (Facebook, Instagram, LinkedIn).

Each platform module maps its API's documented answers to one :class:`Outcome`; the
publisher decides what to do with it. Import the pieces from their modules:
``base`` (interface and types), ``settings``, ``http``, ``registry``.
"""
