"""The composition root (DESIGN.md): the one place that reads settings and wires the pieces.

``callagent.cli`` parses the command line and calls into these modules:

* :mod:`.serve`: ``callagent serve``: the AudioSocket listener, AMI, direct SIP, call routing and
  persistence, recording retention and the HTTP API;
* :mod:`.simulate`: ``callagent call --simulate``: one whole call against an in-process server;
* :mod:`.clients`: ``callagent clients``: clients and their API keys;
* :mod:`.asterisk_config`: ``callagent asterisk-config``: Asterisk's configuration files;
* :mod:`.components`: settings → the models, the agent and the pipeline's parameters;
* :mod:`.audio_files`: caller recordings in, agent audio out;
* :mod:`.logs`: how log lines are written.
"""
