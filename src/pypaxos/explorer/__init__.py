"""``pypaxos explore``: watch and drive single-decree Paxos in a browser.

* ``world``: the script ``Interaction`` with index-addressed messages, partitions and timers;
* ``session``: a command list and a position in it (back = replay a prefix) and the JSON state;
* ``scenarios``: built-in situations with explanations and prepared command lists;
* ``server``: an aiohttp app on 127.0.0.1 serving ``static/`` and a small JSON API;
* ``svg``: message-sequence diagrams, for the page and for ``pypaxos synod --svg``;
* ``cmd``: the command line.
"""
