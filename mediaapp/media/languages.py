"""Language tags: what a track says (ISO 639-2 in MP4 and Matroska, BCP 47 in newer Matroska
and in sidecar names) to the BCP 47 tag HLS's ``LANGUAGE`` and DASH's ``lang`` want.

RFC 5646 asks for the shortest ISO 639 code of a language: ``dan`` is ``da``, and both the
bibliographic (``cze``) and terminology (``ces``) codes map to it. A tag is checked against
RFC 5646's ``langtag`` syntax (language, extlang, script, region, variants, extensions,
private use), so ``zh-Hant-TW`` and ``sr-Latn`` pass and metadata text never does.
"""

from __future__ import annotations

import re

#: Every ISO 639-2 code (B and T) of a language that has an ISO 639-1 code, to that code
#: (ISO 639-2 as pycountry 26.2.16 lists it).
_TABLE = (
    "aar:aa abk:ab afr:af aka:ak alb:sq amh:am ara:ar arg:an arm:hy asm:as ava:av ave:ae aym:ay "
    "aze:az bak:ba bam:bm baq:eu bel:be ben:bn bis:bi bod:bo bos:bs bre:br bul:bg bur:my cat:ca "
    "ces:cs cha:ch che:ce chi:zh chu:cu chv:cv cor:kw cos:co cre:cr cym:cy cze:cs dan:da deu:de "
    "div:dv dut:nl dzo:dz ell:el eng:en epo:eo est:et eus:eu ewe:ee fao:fo fas:fa fij:fj fin:fi "
    "fra:fr fre:fr fry:fy ful:ff geo:ka ger:de gla:gd gle:ga glg:gl glv:gv gre:el grn:gn guj:gu "
    "hat:ht hau:ha hbs:sh heb:he her:hz hin:hi hmo:ho hrv:hr hun:hu hye:hy ibo:ig ice:is ido:io "
    "iii:ii iku:iu ile:ie ina:ia ind:id ipk:ik isl:is ita:it jav:jv jpn:ja kal:kl kan:kn kas:ks "
    "kat:ka kau:kr kaz:kk khm:km kik:ki kin:rw kir:ky kom:kv kon:kg kor:ko kua:kj kur:ku lao:lo "
    "lat:la lav:lv lim:li lin:ln lit:lt ltz:lb lub:lu lug:lg mac:mk mah:mh mal:ml mao:mi mar:mr "
    "may:ms mkd:mk mlg:mg mlt:mt mon:mn mri:mi msa:ms mya:my nau:na nav:nv nbl:nr nde:nd ndo:ng "
    "nep:ne nld:nl nno:nn nob:nb nor:no nya:ny oci:oc oji:oj ori:or orm:om oss:os pan:pa per:fa "
    "pli:pi pol:pl por:pt pus:ps que:qu roh:rm ron:ro rum:ro run:rn rus:ru sag:sg san:sa sin:si "
    "slk:sk slo:sk slv:sl sme:se smo:sm sna:sn snd:sd som:so sot:st spa:es sqi:sq srd:sc srp:sr "
    "ssw:ss sun:su swa:sw swe:sv tah:ty tam:ta tat:tt tel:te tgk:tg tgl:tl tha:th tib:bo tir:ti "
    "ton:to tsn:tn tso:ts tuk:tk tur:tr twi:tw uig:ug ukr:uk urd:ur uzb:uz ven:ve vie:vi vol:vo "
    "wel:cy wln:wa wol:wo xho:xh yid:yi yor:yo zha:za zho:zh zul:zu "
)
_SHORTEST = dict(pair.split(":") for pair in _TABLE.split())
#: RFC 5646 ``langtag`` (section 2.1), case-insensitive; grandfathered tags are not taken.
TAG = re.compile(
    r"[a-z]{2,3}(-[a-z]{3}){0,3}(-[a-z]{4})?(-(?:[a-z]{2}|\d{3}))?"
    r"(-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*(-[a-wyz\d](-[a-z\d]{2,8})+)*(-x(-[a-z\d]{1,8})+)?",
    re.IGNORECASE,
)
#: Codes that name no language: no LANGUAGE attribute rather than a false one.
NO_LANGUAGE = frozenset({"und", "unk", "mis", "zxx", "mul"})


def is_tag(text: str) -> bool:
    """True when ``text`` is a language tag (RFC 5646 syntax, at most 64 characters)."""
    return len(text) <= 64 and TAG.fullmatch(text) is not None


def bcp47(language: str | None) -> str | None:
    """The BCP 47 tag of a track's language, in its conventional case (``eng`` → ``en``,
    ``zh-hant-tw`` → ``zh-Hant-TW``); None when it names no language or is not a tag."""
    if not language or not is_tag(language) or language.lower() in NO_LANGUAGE:
        return None
    first, *rest = language.split("-")
    out = [_SHORTEST.get(first.lower(), first.lower())]
    for i, sub in enumerate(rest):
        if sub.lower() == "x" or len(sub) == 1:  # extensions and private use: as written
            out += [s.lower() for s in rest[i:]]
            break
        out.append(sub.title() if len(sub) == 4 else sub.upper() if len(sub) == 2 else sub.lower())
    return "-".join(out)
