"""The platform's own pages inside the Airflow UI, and the lake viewer behind its task buttons.

One job per module: ``records`` reads what the tasks wrote, ``views`` turns records into view
models, ``charts`` draws SVG, ``pages`` lays view models out with Jinja2 templates (autoescaped),
``hrefs`` checks every link taken from a record, ``app`` serves it all (built only in the API
server).
"""
