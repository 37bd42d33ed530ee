"""FCS files: header and TEXT validation, parsing, channel map, writer."""
