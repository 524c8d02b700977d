#!/usr/bin/env python3
"""Validate an Atom feed (RFC 4287) against the RFC's own schema.

usage: validate.py FEED_FILE atom|rss

Atom: RELAX NG grammar from RFC 4287 Appendix B (atom.rnc beside this file,
converted with rnc2rng, validated with lxml/libxml2), plus the three
Schematron rules embedded in that same grammar (run with lxml.isoschematron).
The schema's dateTime type takes a time without an offset, which RFC 3339
forbids: every atom:updated and atom:published is also checked for one.
RSS 2.0 is checked by the tests with the rss crate's validate(); this
script exits 2 for it.

exit 0 = valid, 1 = invalid (errors on stderr), 2 = usage/tooling problem.
needs: pip install lxml rnc2rng
"""
import os
import re
import sys

from lxml import etree, isoschematron
import rnc2rng

HERE = os.path.dirname(os.path.abspath(__file__))
ATOM_NS = "http://www.w3.org/2005/Atom"
OLD_SCH_NS = "http://www.ascc.net/xml/schematron"  # Schematron 1.5, used by the RFC


def load_atom_schemas():
    rng_text = rnc2rng.dumps(rnc2rng.load(os.path.join(HERE, "atom.rnc")))
    # rnc2rng emits xmlns:local="" for `namespace local = ""`, which is not
    # legal XML ("Empty XML namespace is not allowed"); the prefix is unused.
    rng_text = re.sub(r'\s+xmlns:local=""', "", rng_text)
    rng_doc = etree.fromstring(rng_text.encode("utf-8"))
    relaxng = etree.RelaxNG(rng_doc)
    # The grammar's embedded Schematron 1.5 rules (s:rule), repackaged
    # unchanged into an ISO Schematron schema that lxml can run.
    S = "{%s}" % isoschematron.SCHEMATRON_NS
    sch = etree.Element(S + "schema", nsmap={"sch": isoschematron.SCHEMATRON_NS})
    etree.SubElement(sch, S + "ns", prefix="atom", uri=ATOM_NS)
    for rule in rng_doc.iter("{%s}rule" % OLD_SCH_NS):
        pattern = etree.SubElement(sch, S + "pattern")
        r = etree.SubElement(pattern, S + "rule", context=rule.get("context"))
        for a in rule.iter("{%s}assert" % OLD_SCH_NS):
            etree.SubElement(r, S + "assert", test=a.get("test")).text = a.text
    schematron = isoschematron.Schematron(sch, store_report=True)
    return relaxng, schematron


def validate_atom(path):
    errors = []
    try:
        doc = etree.parse(path, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as e:
        return ["not well-formed XML: %s" % e]
    relaxng, schematron = load_atom_schemas()
    if not relaxng.validate(doc):
        for e in relaxng.error_log:
            errors.append("%s:%d: RELAX NG (RFC 4287 App. B): %s" % (path, e.line, e.message))
    dates = doc.xpath("//atom:updated | //atom:published", namespaces={"atom": ATOM_NS})
    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
    for d in dates:
        if not rfc3339.match((d.text or "").strip()):
            errors.append("%s:%d: RFC 3339: %r is not a date-time with an offset" % (path, d.sourceline, d.text))
    if not schematron.validate(doc):
        report = schematron.validation_report
        svrl = "{http://purl.oclc.org/dsdl/svrl}"
        for fa in report.iter(svrl + "failed-assert"):
            text = " ".join("".join(fa.itertext()).split())
            hits = doc.xpath(fa.get("location"))
            line = hits[0].sourceline if hits else 0
            errors.append("%s:%d: Schematron (RFC 4287 App. B): %s" % (path, line, text))
    return errors


def main(argv):
    if len(argv) != 3 or argv[2] not in ("atom", "rss"):
        print(__doc__, file=sys.stderr)
        return 2
    path, kind = argv[1], argv[2]
    if kind == "rss":
        print("RSS is validated by the tests with the rss crate (see README)", file=sys.stderr)
        return 2
    errors = validate_atom(path)
    if errors:
        print("INVALID %s feed: %s" % (kind, path), file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("valid %s feed: %s" % (kind, path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
