"""DeepFaune 1.5's class and label names, written out from ../shared/deepfaune-1.5.md (section
1.7, the class and bird-group tables; section 3.3, ``txt_noanimalclasses``, ``txt_empty``,
``txt_undefined``), in DeepFaune's dict layout, for the parity tests. Never read from this
project's manifests. Swedish is ``"se"`` as DeepFaune writes it.
"""

from __future__ import annotations

# fmt: off
TXT_ANIMALCLASSES = {
    "fr": ["bison", "blaireau", "bouquetin", "castor", "cerf", "chacal doré", "chamois", "chat",
        "chevre", "chevreuil", "chien", "chien viverrin", "daim", "ecureuil", "elan", "equide",
        "genette", "glouton", "herisson", "lagomorphe", "loup", "loutre", "lynx", "mangouste",
        "marmotte", "micromammifere", "mouflon", "mouton", "mustelide", "oiseau", "ours",
        "porcepic", "ragondin", "rat musqué", "raton laveur", "renard", "renard arctique", "renne",
        "sanglier", "vache"],
    "en": ["bison", "badger", "ibex", "beaver", "red deer", "golden jackal", "chamois", "cat",
        "goat", "roe deer", "dog", "raccoon dog", "fallow deer", "squirrel", "moose", "equid",
        "genet", "wolverine", "hedgehog", "lagomorph", "wolf", "otter", "lynx", "mongoose",
        "marmot", "micromammal", "mouflon", "sheep", "mustelid", "bird", "bear", "porcupine",
        "nutria", "muskrat", "raccoon", "fox", "arctic fox", "reindeer", "wild boar", "cow"],
    "it": ["bisonte", "tasso", "stambecco", "castoro", "cervo", "sciacallo dorato", "camoscio",
        "gatto", "capra", "capriolo", "cane", "cane procione", "daino", "scoiattolo", "alce",
        "equide", "genetta", "ghiottone", "riccio", "lagomorfo", "lupo", "lontra", "lince",
        "mangusta", "marmotta", "micromammifero", "muflone", "pecora", "mustelide", "uccello",
        "orso", "istrice", "nutria", "ondatra", "procione", "volpe", "volpe artica", "renna",
        "cinghiale", "mucca"],
    "de": ["Bison", "Dachs", "Steinbock", "Biber", "Rothirsch", "Goldschakal", "Gämse", "Katze",
        "Ziege", "Rehwild", "Hund", "Marderhund", "Damwild", "Eichhörnchen", "Elch", "Equide",
        "Ginsterkatze", "Vielfraß", "Igel", "Lagomorpha", "Wolf", "Otter", "Luchs", "Manguste",
        "Murmeltier", "Kleinsäuger", "Mufflon", "Schaf", "Marder", "Vogel", "Bär", "Stachelschwein",
        "Nutria", "Bisamratte", "Waschbär", "Fuchs", "Polarfuchs", "Rentier", "Wildschwein", "Kuh"],
    "es": ["bisonte", "tejón", "cabra montés", "castor", "ciervo rojo", "chacal dorado", "rebeco",
        "gato", "cabra", "corzo", "perro", "perro mapache", "gamo", "ardilla", "alce", "équido",
        "gineta", "glotón", "erizo", "lagomorfo", "lobo", "nutria", "lince", "mangosta", "marmota",
        "micromamífero", "muflón", "oveja", "mustélido", "ave", "oso", "puercoespín", "coipú",
        "rata almizclera", "mapache", "zorro", "zorro ártico", "reno", "jabalí", "vaca"],
    "no": ["bison", "grevling", "steinbukk", "bever", "hjort", "gullsjakal", "gemse", "katt",
        "geit", "rådyr", "hund", "mårhund", "dåhjort", "ekorn", "elg", "hestedyr", "genett", "jerv",
        "pinnsvin", "hare", "ulv", "oter", "gaupe", "mangust", "murmeldyr", "småpattedyr", "muflon",
        "sau", "mårdyr", "fugl", "bjørn", "piggsvin", "beverrotte", "bisamrotte", "vaskebjørn",
        "rev", "fjellrev", "rein", "villsvin", "ku"],
    "se": ["bison", "grävling", "stenbock", "bäver", "kronhjort", "guldschakal", "gems", "katt",
        "get", "rådyr", "hund", "mårdhund", "dovhjort", "ekorre", "älg", "hästdjur", "genett",
        "järv", "igelkott", "hare", "varg", "utter", "lo", "mangust", "murmeldjur", "smådäggdjur",
        "mufflonfår", "får", "mårdjur", "fågel", "björn", "piggsvin", "sumpbäver", "bisam",
        "tvättbjörn", "räv", "fjällräv", "ren", "vildsvin", "ko"],
    "pt": ["bisão", "texugo", "íbex", "castor", "veado", "chacal-dourado", "camurça", "gato",
        "cabra", "corço", "cão", "cão-guaxinim", "gamo", "esquilo", "alce", "equídeo", "gineta",
        "glutão", "ouriço", "lagomorfo", "lobo", "lontra", "lince", "mangusto", "marmota",
        "micromamífero", "muflão", "ovelha", "mustelídeo", "ave", "urso", "porco-espinho", "nutria",
        "rato-almiscarado", "guaxinim", "raposa", "raposa-do-ártico", "rena", "javali", "vaca"],
}

TXT_BIRDCLASSES = {
    "fr": ["anseriforme", "autreoiseau", "columbiforme", "corvide", "galliforme", "passereau",
        "piciforme", "rapace"],
    "en": ["anseriform", "otherbird", "columbiform", "corvid", "galliform", "passerine", "piciform",
        "raptor"],
    "it": ["anseriforme", "altrouccello", "columbiforme", "corvide", "galliforme", "passeriforme",
        "piciforme", "rapace"],
    "de": ["Gänsevögel", "Anderervögel", "Taubenvögel", "Rabenvögel", "Hühnervögel",
        "Sperlingsvögel", "Spechtvögel", "Greifvögel"],
    "es": ["anseriforme", "otroave", "columbiforme", "córvido", "galliforme", "paseriforme",
        "piciforme", "rapaz"],
    "no": ["andefugler", "andre fugler", "duefugler", "kråkefugler", "hønsefugler", "spurvefugler",
        "spettefugler", "rovfugler"],
    "se": ["andfåglar", "andra fåglar", "duvfåglar", "kråkfåglar", "hönsfåglar", "tättingar",
        "hackspettartade fåglar", "rovfåglar"],
    "pt": ["anseriforme", "outraave", "columbiforme", "corvídeo", "galiforme", "passeriforme",
        "piciforme", "rapinante"],
}
# fmt: on

TXT_NOANIMALCLASSES = {
    "fr": ["humain", "vehicule"],
    "en": ["human", "vehicle"],
    "it": ["umano", "veicolo"],
    "de": ["Mensch", "Fahrzeug"],
    "es": ["humano", "vehículo"],
    "no": ["menneske", "kjøretøy"],
    "se": ["människa", "fordon"],
    "pt": ["humano", "veículo"],
}
TXT_EMPTY = {
    "fr": "vide", "en": "empty", "it": "vuoto", "de": "Leer", "es": "vacío", "no": "tom",
    "se": "tom", "pt": "vazio",
}  # fmt: skip
TXT_UNDEFINED = {
    "fr": "indéfini", "en": "undefined", "it": "indeterminato", "de": "Undefiniert",
    "es": "indefinido", "no": "udefinert", "se": "odefinierad", "pt": "indefinido",
}  # fmt: skip

#: ``txt_animalclasses["en"].index("bird")``, as DeepFaune finds it.
BIRD_INDEX = TXT_ANIMALCLASSES["en"].index("bird")


def label_names(lang: str, bird_head: bool) -> list[str]:
    """Every label in ``lang`` at its index (the numbering of ``deepfaune_sequence_ref``):
    DeepFaune's ``txt_classes_lang`` (the classes; with the bird head, ``"<bird> <group>"`` for
    each group and ``bird`` renamed ``"<bird> <undefined>"``; human, vehicle), then empty and
    undefined."""
    classes = list(TXT_ANIMALCLASSES[lang])
    birds = []
    if bird_head:
        bird = classes[BIRD_INDEX]
        birds = [bird + " " + group for group in TXT_BIRDCLASSES[lang]]
        classes[BIRD_INDEX] += " " + TXT_UNDEFINED[lang]
    return classes + birds + TXT_NOANIMALCLASSES[lang] + [TXT_EMPTY[lang], TXT_UNDEFINED[lang]]
