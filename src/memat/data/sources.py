"""Registry of the public raw data sets used by ``memat``.

Every data set is pinned to one commit of a public GitHub repository; each file is listed with

* ``local``: its path relative to the data set's folder in the project data directory
  (``<data_dir>/<name>/<local>``), which may differ from the upstream layout;
* ``upstream``: its path inside the upstream repository at the pinned commit;
* ``sha256`` and ``size`` of the exact bytes (computed from the reviewed copies in ``shared/data``).

The download URL of a file is ``https://raw.githubusercontent.com/{repo}/{commit}/{upstream}``.
:mod:`memat.data.fetch` uses this registry to copy or download the files and verifies every sha256.

Nothing in this module touches the file system or the network.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@dataclass(frozen=True)
class SourceFile:
    """One file of a data set."""

    local: str
    upstream: str
    sha256: str
    size: int


@dataclass(frozen=True)
class DataSource:
    """A public data set pinned to one commit of a GitHub repository."""

    name: str
    repo: str
    commit: str
    licence: str
    description: str
    files: tuple[SourceFile, ...]

    def url(self, file: SourceFile | str) -> str:
        """Raw download URL of ``file`` (a :class:`SourceFile` or its ``local`` path)."""
        f = self.file(file) if isinstance(file, str) else file
        return RAW_URL.format(repo=self.repo, commit=self.commit, path=quote(f.upstream))

    def file(self, local: str) -> SourceFile:
        """The file whose local relative path is ``local``."""
        for f in self.files:
            if f.local == local:
                return f
        raise KeyError(f"data set {self.name!r} has no file {local!r}")

    @property
    def size(self) -> int:
        """Total size in bytes."""
        return sum(f.size for f in self.files)


_FILES: dict[str, tuple[tuple[str, str, str, int], ...]] = {}

# ---- file tables (local path, upstream path, sha256, size); generated from the reviewed copies ----
_FILES['bmike53_counterfact'] = (
    ('counterfact-train.json', 'data/BMIKE53/CounterFact/counterfact-train.json', '17ca75171d952033c25a41ffcb20b53d2ed63b453f5dd535c45a814883806edb', 2747295),
    ('counterfact_test.json', 'data/BMIKE53/CounterFact/counterfact_test.json', '659bbd3e16cd8aa40e62098b67c95ca75fbaab22db74a76b55ddab048b19f998', 571140),
    ('counterfact_test_af.json', 'data/BMIKE53/CounterFact/counterfact_test_af.json', '6ac490e748a6d397ffcaf0b377609b98c99d542b11319290f95ef4ac9ba9aa1a', 1133423),
    ('counterfact_test_ar.json', 'data/BMIKE53/CounterFact/counterfact_test_ar.json', '31163988efa6a0cde8c10321fae31d2f090cbb3aa93d35b25066d58ee4765cea', 1254138),
    ('counterfact_test_az.json', 'data/BMIKE53/CounterFact/counterfact_test_az.json', 'cf825322d503b7daf6b7460e8954a31f833d65208bb73b5a31e7ad065be94d31', 1131942),
    ('counterfact_test_be.json', 'data/BMIKE53/CounterFact/counterfact_test_be.json', '92d06cb5dcc5bc8256c0a7d4794cd9badedcde9df4d2b90daee6c0a03d97c183', 1316656),
    ('counterfact_test_bg.json', 'data/BMIKE53/CounterFact/counterfact_test_bg.json', '283e5030c983e2c5122518960f84a588166b7d582d313b3c8ee456210eb0d5d1', 1312144),
    ('counterfact_test_bn.json', 'data/BMIKE53/CounterFact/counterfact_test_bn.json', '7b55f1df7c52d3ad3fd5fd44a9a4d946b96634d9d5390e0a2f9ab1c5719cf7e9', 1503904),
    ('counterfact_test_ca.json', 'data/BMIKE53/CounterFact/counterfact_test_ca.json', '55a1ae1e9cb252eed7c7f80eefe85ac222758864dab6de82152f1b4aab9d2e78', 1131589),
    ('counterfact_test_ceb.json', 'data/BMIKE53/CounterFact/counterfact_test_ceb.json', 'b1439f63ddb66ffeb49d3f3f132970678b5545df9e2112ef5015cd99de1f3991', 1146220),
    ('counterfact_test_cs.json', 'data/BMIKE53/CounterFact/counterfact_test_cs.json', 'a97bb2933e427c87ca45be15a3397a56bab79304c1968c6be3f007e6311235fb', 1131473),
    ('counterfact_test_cy.json', 'data/BMIKE53/CounterFact/counterfact_test_cy.json', '1ed3448029ca74348c4c2d3b1eda1b950df7186e715503d9405fb1dda1a63fa3', 1123885),
    ('counterfact_test_da.json', 'data/BMIKE53/CounterFact/counterfact_test_da.json', 'eb9fea2778e2610c803eb8276b0f02f0f15f2b72d95db30bb3febd1016936c9e', 1122029),
    ('counterfact_test_de.json', 'data/BMIKE53/CounterFact/counterfact_test_de.json', '89fdd5d25bd9992f8de3b1b7c00bd721a897b85935d01b44133f81d3654c38bc', 1154279),
    ('counterfact_test_el.json', 'data/BMIKE53/CounterFact/counterfact_test_el.json', '432205ca8a12eeb8db189135e636ccd4ded6a9e332b3839bc330edc6c30dd884', 1346805),
    ('counterfact_test_et.json', 'data/BMIKE53/CounterFact/counterfact_test_et.json', '1b136a31647f9a7748c0bcf76462061867bcb391d6a10a419210c58008da1af3', 1108015),
    ('counterfact_test_eu.json', 'data/BMIKE53/CounterFact/counterfact_test_eu.json', '1ffba0ea5797fa9fe5ec82b028086395e165e216265181056667b02a16eccdb1', 1113380),
    ('counterfact_test_fa.json', 'data/BMIKE53/CounterFact/counterfact_test_fa.json', 'c7aea43acd6fdc2aa861135e1cfaf12e6a989b49da56eaac3fe5937adfa75c9a', 1274386),
    ('counterfact_test_fi.json', 'data/BMIKE53/CounterFact/counterfact_test_fi.json', '3bfc91831f69af44bba0f5c9af1f5361fabaf8f3f23096a5750a03e261e7a768', 1126262),
    ('counterfact_test_fr.json', 'data/BMIKE53/CounterFact/counterfact_test_fr.json', 'a36efe8566e50202f79c6f2aa24e8d52354980ce133a16809d186686218e3bce', 1151909),
    ('counterfact_test_ga.json', 'data/BMIKE53/CounterFact/counterfact_test_ga.json', '8aa5dc7fdde134f2a9bc8861b59a288b35cd9645e477e83875686a4a875d8b67', 1142070),
    ('counterfact_test_gl.json', 'data/BMIKE53/CounterFact/counterfact_test_gl.json', '2705ae9d173f784f3242ab0852d63e7c5f090d8abcc1076badc499f239c82538', 1120529),
    ('counterfact_test_he.json', 'data/BMIKE53/CounterFact/counterfact_test_he.json', 'c55dd94d8b634abaca38b122d4d680db2473bc5f9d0596d88e6c8adafe050c61', 1208151),
    ('counterfact_test_hi.json', 'data/BMIKE53/CounterFact/counterfact_test_hi.json', 'ac8ffa118b3f282ef9c9284e3ece53ba995f9cf86c354018fac02bfd023fcc13', 1491644),
    ('counterfact_test_hr.json', 'data/BMIKE53/CounterFact/counterfact_test_hr.json', '8ba9a3b07f40d9ea22387a3c714452564e953e824fb3dc18c7157f4b45d4254a', 1116696),
    ('counterfact_test_hu.json', 'data/BMIKE53/CounterFact/counterfact_test_hu.json', 'cb41db718bc1a1cf99852d101b4a9a1a2bec2a83fbb3ed1a64d4c9b1406f2bf8', 1133851),
    ('counterfact_test_hy.json', 'data/BMIKE53/CounterFact/counterfact_test_hy.json', 'e1afe8f603486af484cbb0776971c65dcacdd43755de4084f9a6918b34c03f1d', 1327327),
    ('counterfact_test_id.json', 'data/BMIKE53/CounterFact/counterfact_test_id.json', '94ffc81c62de303fa2bf8ae2faaf281c767ef6669be7296a0d92b028ad774c8a', 1122541),
    ('counterfact_test_it.json', 'data/BMIKE53/CounterFact/counterfact_test_it.json', '94ce21a3e69cd6abd929b970e1033a537d0f9da9b89c1528707981eea2b70e7b', 1134975),
    ('counterfact_test_ja.json', 'data/BMIKE53/CounterFact/counterfact_test_ja.json', '261ee9905e12b2d1988b882960becb5a23443d88fa75c37d5274317fa94e7ea1', 1260987),
    ('counterfact_test_ka.json', 'data/BMIKE53/CounterFact/counterfact_test_ka.json', 'd8379db5a2c2498439cf7c1b6cfcc4d081754200718f78c31ba3c3097b99ddc4', 1555281),
    ('counterfact_test_ko.json', 'data/BMIKE53/CounterFact/counterfact_test_ko.json', 'c636b6bdcd8e649947098d09647818404ac1fa3470487b0fcba9828b748493ea', 1201003),
    ('counterfact_test_la.json', 'data/BMIKE53/CounterFact/counterfact_test_la.json', 'c28fe2ed3d7d95afba4bb7fbbf13dfe04ae4d647d0b15335248788ef13117aa0', 1112725),
    ('counterfact_test_lt.json', 'data/BMIKE53/CounterFact/counterfact_test_lt.json', '33726a4e0f61d9ae99bff10ed47f958db8c41e33d46d0047b28575e9428df921', 1121329),
    ('counterfact_test_lv.json', 'data/BMIKE53/CounterFact/counterfact_test_lv.json', 'e6587a3385796170e647c7177cef51a6ab8ef1c662b87e2663168227c46e0bc6', 1124058),
    ('counterfact_test_ms.json', 'data/BMIKE53/CounterFact/counterfact_test_ms.json', '21f3d1cac12392c627cecde605b1a7cd0e55529b8e1c097301d1736f00ae90e5', 1137388),
    ('counterfact_test_nl.json', 'data/BMIKE53/CounterFact/counterfact_test_nl.json', 'fabd0a87b52567efb99c41f7f98f4103bbaa31a4dd510649f5651f8d72fc6373', 1136676),
    ('counterfact_test_pl.json', 'data/BMIKE53/CounterFact/counterfact_test_pl.json', 'ef51545ee111932f3c1095b5b1dd7c69c14bd30d8ce0bc183122e3437c93547b', 1136030),
    ('counterfact_test_pt.json', 'data/BMIKE53/CounterFact/counterfact_test_pt.json', 'dd4ff73c5740d3d785bd03cfce08fc6ffec28b3a116eb890e8f973e73ea5ed13', 1130394),
    ('counterfact_test_ro.json', 'data/BMIKE53/CounterFact/counterfact_test_ro.json', 'e4128f058083c4b66e4846ab367b9bec5ec01cf2ed17931647a17b4640e97e8a', 1126503),
    ('counterfact_test_ru.json', 'data/BMIKE53/CounterFact/counterfact_test_ru.json', '91016e87c1f32aa517e645c25442a512fe92b5ef029e4f5b372d553c60e426e8', 1334215),
    ('counterfact_test_sk.json', 'data/BMIKE53/CounterFact/counterfact_test_sk.json', '21e34a1835b5002cb776e226ee0f5553a9c5c790519dbf0ffce3e2f3c890d422', 1130618),
    ('counterfact_test_sl.json', 'data/BMIKE53/CounterFact/counterfact_test_sl.json', '016b350d685a5d6e02b115a062e90ba6b73d6bc07b137a580dc77e499f41da94', 1123873),
    ('counterfact_test_sq.json', 'data/BMIKE53/CounterFact/counterfact_test_sq.json', 'feab8d091c3f326c3aa6089551054c364b28ab4ae44c1009681d0e0367a95e62', 1129832),
    ('counterfact_test_sr.json', 'data/BMIKE53/CounterFact/counterfact_test_sr.json', 'aa77a6e2c046966a89d73fddc96c26dd513fd98eb6dc3f4a5d6a31a141cd87c9', 1123390),
    ('counterfact_test_sv.json', 'data/BMIKE53/CounterFact/counterfact_test_sv.json', 'b2e0809c692ae0fc605b64bac87b8db81d2fa75823b68aefd9aa6ad2fc744ad9', 1122807),
    ('counterfact_test_ta.json', 'data/BMIKE53/CounterFact/counterfact_test_ta.json', 'f8fb22f86660ab49a72c17e2e76ee27ea260da9b692637c858342eaa3b5f4068', 1568241),
    ('counterfact_test_th.json', 'data/BMIKE53/CounterFact/counterfact_test_th.json', 'ac816d5ec1a2fbf22575544191c70ff39ca1bb4d04ce14e89289e0959c36fd20', 1450897),
    ('counterfact_test_tr.json', 'data/BMIKE53/CounterFact/counterfact_test_tr.json', '6e024ff5e7a3c798d86bce215c18783379025d73c8c0e0cb84301cddcf0a0eb9', 1123708),
    ('counterfact_test_uk.json', 'data/BMIKE53/CounterFact/counterfact_test_uk.json', '3d1f9a41e0e2477d392baaff5474e30b9b69d722878fb4b2909b932d10015754', 1308366),
    ('counterfact_test_ur.json', 'data/BMIKE53/CounterFact/counterfact_test_ur.json', '5be83e58d7598863d53ee53d97053a1b39f47fe977f9969374bb5f75ece70514', 1274227),
    ('counterfact_test_vi.json', 'data/BMIKE53/CounterFact/counterfact_test_vi.json', '8ae15cf62dd3e3fed383150c4e10fae4a2f28168921bc7c67a7749905f76725f', 1175708),
    ('counterfact_test_zh.json', 'data/BMIKE53/CounterFact/counterfact_test_zh.json', 'f942f9f7c16882a28dbe710a5fbdae56401389eef5ca1c999150ce594e438706', 1117121),
    ('lang.json', 'data/lang.json', 'ac27a2d56af340ccfe6536ee3f06ed5f2f9cd1cfdfb3e23af4b64025bfc10b95', 1099),
    ('mcounterfact.json', 'data/manual_prompts/mcounterfact.json', '594b980656b29bed7f08729b5ec0773c480e575f8bdb0add6c257b9fa0cb2b5f', 6873),
    ('mcounterfact_multi.json', 'data/manual_prompts/mcounterfact_multi.json', '86536d909b833cec52803a3d903470c9b422d97cc13aa69848b2c525bd112d85', 161264),
)
_FILES['catalan_cc0_sentences'] = (
    ('translated_wiki.es-ca.txt', 'translated_wiki.es-ca.txt', '8c1a7bbc22d8e96caf75b1ad8bcf90f0541f003d4601385b2f400821ae3cff3e', 3230638),
    ('wikidata_sentences.txt', 'wikidata_sentences.txt', '34e09e66dfe77b7a879efdbec3a9cf4cae9e02a463e5f04f305ef3faa39e1bd6', 1256598),
)
_FILES['counterfact_easyedit_full'] = (
    ('counterfact-edit.json', 'data/counterfact/counterfact-edit.json', 'bfe31a7081932739406e282bb625d74222549c3386c15b1df3dfbc3978c69eec', 3950774),
    ('counterfact-train.json', 'data/counterfact/counterfact-train.json', 'f7d443ffb0c5da6cbe816cdac45281ccb3f204b8a840f00d07a4aafa949bcd76', 3949873),
    ('counterfact-val.json', 'data/counterfact/counterfact-val.json', '42b44645471020a9419d183deb9e113e82941380046861770ea0083dabd13982', 760303),
)
_FILES['globalvoices_en_ca'] = (
    ('globalvoices.en-ca.ca', 'eng-cat/globalvoices.en-ca.ca', '3bd1d1f0ccfbe1242152e653c3502ae299072b76ff970fde5d9728e9dc165385', 2737048),
    ('globalvoices.en-ca.en', 'eng-cat/globalvoices.en-ca.en', '11c20d8b664a7f1ee95e05d65712f9185ddab1a5361ca943103d8f8505a08256', 2541939),
)
_FILES['mpararel_ca_en'] = (
    ('patterns/ca/P101.jsonl', 'data/mpararel_reviewed/patterns/ca/P101.jsonl', '199cbfabbbefc7494cc5dbf71cee0a676083d5ca4fafefa08f304b8f5edbcc0f', 1184),
    ('patterns/ca/P103.jsonl', 'data/mpararel_reviewed/patterns/ca/P103.jsonl', 'b761df1a9e21c0a46e770e7130140f9ec9da3b7ed2f5c8f564cd2620c3c0eb2d', 318),
    ('patterns/ca/P106.jsonl', 'data/mpararel_reviewed/patterns/ca/P106.jsonl', '5cc842caea6ea680af9325c5b9a38928b10b74e6600f5d177b7560426b218eaf', 609),
    ('patterns/ca/P108.jsonl', 'data/mpararel_reviewed/patterns/ca/P108.jsonl', 'a92813bdd64218e006a62d47b406554dd9ec8e6ea496c698e8864f24e29b0828', 475),
    ('patterns/ca/P127.jsonl', 'data/mpararel_reviewed/patterns/ca/P127.jsonl', '894bba2ffffefc34bfaf998c5338e1bc50462a6c0c582f1f47b24c9b242ce596', 270),
    ('patterns/ca/P1303.jsonl', 'data/mpararel_reviewed/patterns/ca/P1303.jsonl', '120bc4188849663a6159f95bec4537ff3b84f94f9e9e3f5f10c5fa4cb9b34faf', 240),
    ('patterns/ca/P131.jsonl', 'data/mpararel_reviewed/patterns/ca/P131.jsonl', 'dcf3a554f3bda21abe0d99e65336800f499fd5651316323dde4387f9bba063de', 326),
    ('patterns/ca/P136.jsonl', 'data/mpararel_reviewed/patterns/ca/P136.jsonl', 'cf5e32a1d18ac42acf0519ed4c9752686306df6002a0461539361284345547c8', 382),
    ('patterns/ca/P1376.jsonl', 'data/mpararel_reviewed/patterns/ca/P1376.jsonl', '8de72b562a1e38aae6cb416b1eecbd2bfaa6c7ff317e9e5967571b150dbe99b6', 500),
    ('patterns/ca/P138.jsonl', 'data/mpararel_reviewed/patterns/ca/P138.jsonl', 'c8fd3ac870d855e794316d6d1ca5f5c6b52b52e2429390fceb61e813b4d82405', 1578),
    ('patterns/ca/P140.jsonl', 'data/mpararel_reviewed/patterns/ca/P140.jsonl', 'a3e509c29367fe0173dba015b30a84cd962335e8ca40f0d25ed2eb9f424f3a89', 316),
    ('patterns/ca/P1412.jsonl', 'data/mpararel_reviewed/patterns/ca/P1412.jsonl', 'ad994ef49ed3a212315c20597ab299d04fb9075d55ddfa1568f019cae2903f19', 648),
    ('patterns/ca/P159.jsonl', 'data/mpararel_reviewed/patterns/ca/P159.jsonl', '469aad9c3b6e447a56c6c40b1a88933ed66430f4fbb48aa235661819242c8a7f', 703),
    ('patterns/ca/P17.jsonl', 'data/mpararel_reviewed/patterns/ca/P17.jsonl', '86109e3ff845dfda2ea4a2d053cefc013e63562d162665a38faec438131bc087', 256),
    ('patterns/ca/P176.jsonl', 'data/mpararel_reviewed/patterns/ca/P176.jsonl', 'a24d742d3b18bf4d2b9b25a1ce8c0f15c24f6334b8959a4b7399e145de182468', 923),
    ('patterns/ca/P178.jsonl', 'data/mpararel_reviewed/patterns/ca/P178.jsonl', '6424d8cccfcf2873a252046607bfc8a94d00e8adcc36717e886caf46a189a7aa', 1346),
    ('patterns/ca/P19.jsonl', 'data/mpararel_reviewed/patterns/ca/P19.jsonl', '6eeea28f8fc8732a21969de855359c27b5c3ebdca05236978eeeac282849f2a2', 918),
    ('patterns/ca/P190.jsonl', 'data/mpararel_reviewed/patterns/ca/P190.jsonl', '823d7809eaac8ec6c994c1de257965104b4df1169afb84d30a2944cacb0f959b', 316),
    ('patterns/ca/P20.jsonl', 'data/mpararel_reviewed/patterns/ca/P20.jsonl', 'dc5f1c5618f239f02dd3d4dada35a7fe440b43d6d4090c9051275bb60f627022', 469),
    ('patterns/ca/P264.jsonl', 'data/mpararel_reviewed/patterns/ca/P264.jsonl', '8fd0a1b13e1541a70103414dbaee24a8158a046bae40f682b7cc3c2be0b0afe0', 1471),
    ('patterns/ca/P27.jsonl', 'data/mpararel_reviewed/patterns/ca/P27.jsonl', '7485b5ee39a3c656a0ea4911c99ee7b64ad16f61b978ee1ca1366654ba7d84a4', 530),
    ('patterns/ca/P276.jsonl', 'data/mpararel_reviewed/patterns/ca/P276.jsonl', 'c4b642fa2e52da78f431efae9d8d3d5d229baf8ad2946002a45e376e609dda81', 193),
    ('patterns/ca/P279.jsonl', 'data/mpararel_reviewed/patterns/ca/P279.jsonl', '0c6126d5fc0dfdc1ff148233aa0b0a09dfbcff57da200a6a9f9d2cc5f7a05a28', 286),
    ('patterns/ca/P30.jsonl', 'data/mpararel_reviewed/patterns/ca/P30.jsonl', '78d6ea474cc7982981e3c756c635719c23408d2aa127aadf5fb0aa4801a63b9e', 518),
    ('patterns/ca/P36.jsonl', 'data/mpararel_reviewed/patterns/ca/P36.jsonl', '8f48346371a8d951b6166d9a4bdf6d7b02d00c0d9b63e7b5c813c60c6e451dc6', 570),
    ('patterns/ca/P361.jsonl', 'data/mpararel_reviewed/patterns/ca/P361.jsonl', '3a619db14d03623c31826bd8f83963b908c59c5ecb9c293ac63ca6927319d886', 134),
    ('patterns/ca/P364.jsonl', 'data/mpararel_reviewed/patterns/ca/P364.jsonl', '84b62a9c4bd406b0c4d55395ed4334a2e56756a1315022ac139b32215830e399', 590),
    ('patterns/ca/P37.jsonl', 'data/mpararel_reviewed/patterns/ca/P37.jsonl', '277afebd5f249410739a817312275967f3b93fb35fa0b4a48f7593987a04fdad', 878),
    ('patterns/ca/P39.jsonl', 'data/mpararel_reviewed/patterns/ca/P39.jsonl', '36b6ef76c4fef8fc6e1876d26784a354fedeafe0429fa0e2077738a3e805a130', 648),
    ('patterns/ca/P407.jsonl', 'data/mpararel_reviewed/patterns/ca/P407.jsonl', '97275b071f2b7c3671b768994cb26fb310729a94abcba8d988475ae1681e7b2b', 1474),
    ('patterns/ca/P413.jsonl', 'data/mpararel_reviewed/patterns/ca/P413.jsonl', '37dce6a1d984962a1e3c51d7323fc366104f56df6bfff5d12d761e2103e8645f', 421),
    ('patterns/ca/P449.jsonl', 'data/mpararel_reviewed/patterns/ca/P449.jsonl', '7fc86a8a3f459274753330aa55fd8478136d8f65819490ee1c38b22c282506d8', 806),
    ('patterns/ca/P463.jsonl', 'data/mpararel_reviewed/patterns/ca/P463.jsonl', 'd1aa5bf611f3d80d7532ec4b88e8617134dcb34a8e469fd11366525eac588163', 397),
    ('patterns/ca/P47.jsonl', 'data/mpararel_reviewed/patterns/ca/P47.jsonl', 'accb8b34f072e99d6b15eb067288d24759752b7e1d20f65b2e733bdd20278042', 748),
    ('patterns/ca/P495.jsonl', 'data/mpararel_reviewed/patterns/ca/P495.jsonl', '7832987a711c7f8e7c7890b008fce39a05d063565ab51eed98bd574761310d0c', 1142),
    ('patterns/ca/P530.jsonl', 'data/mpararel_reviewed/patterns/ca/P530.jsonl', '1e52df2ee371681b5ea1b1860a60cf8e11fc8c4c8aa7781084a3cb583f3642eb', 846),
    ('patterns/ca/P740.jsonl', 'data/mpararel_reviewed/patterns/ca/P740.jsonl', '5d89adce5b049009d20f66a606b12fa7bcc157486a3301943e0307aa79c1fadc', 953),
    ('patterns/ca/P937.jsonl', 'data/mpararel_reviewed/patterns/ca/P937.jsonl', 'd6f8c239aca4be8fcf77ba888b145f6bd309e3374d21f6b7c858c1ab46d37e12', 421),
    ('patterns/en/P101.jsonl', 'data/mpararel_reviewed/patterns/en/P101.jsonl', 'c22b8d5f0dccdc860978c599aa1c5c3e2974e750ec9119ff9fdd7f2f2c68698d', 933),
    ('patterns/en/P103.jsonl', 'data/mpararel_reviewed/patterns/en/P103.jsonl', '3c35da47512b80f7c4a8949da6535704c1220b524b1c8bebe5d8b894280ce411', 290),
    ('patterns/en/P106.jsonl', 'data/mpararel_reviewed/patterns/en/P106.jsonl', '013de18c6626e80fad3c289b1300ee83662098b8d15a9b6bf7d18b648d43032d', 742),
    ('patterns/en/P108.jsonl', 'data/mpararel_reviewed/patterns/en/P108.jsonl', 'a5e92fd5f469dc2c4438038773a7a2f1189630143fa94640af73775291c81611', 260),
    ('patterns/en/P127.jsonl', 'data/mpararel_reviewed/patterns/en/P127.jsonl', 'eff5c0b522d734dee3cd045ecc9dfdae91a6087c5365859150a188601a6e343f', 233),
    ('patterns/en/P1303.jsonl', 'data/mpararel_reviewed/patterns/en/P1303.jsonl', '97c8c4e91374557f13ba686d886e3885bae8af81161672717282833bbf571c50', 235),
    ('patterns/en/P131.jsonl', 'data/mpararel_reviewed/patterns/en/P131.jsonl', 'a4af1b608a6cabc0f234e5f86847a2002781f8681ea958d4103c86a14df6764c', 186),
    ('patterns/en/P136.jsonl', 'data/mpararel_reviewed/patterns/en/P136.jsonl', 'dd22af56332d813db58596d226f421609d66789778e12099bd0893baa3a8ee29', 374),
    ('patterns/en/P1376.jsonl', 'data/mpararel_reviewed/patterns/en/P1376.jsonl', '22f6f6f8ca94fe44541b048e0b29bf2de4e8494b01e63982aa52065bb3f89ce3', 981),
    ('patterns/en/P138.jsonl', 'data/mpararel_reviewed/patterns/en/P138.jsonl', '8ca567667f0accfba0a6e1998ea4eb3721088dc6af9bee220f082c4b2a3561d0', 1376),
    ('patterns/en/P140.jsonl', 'data/mpararel_reviewed/patterns/en/P140.jsonl', '842b97ec7ac5a2acf2cea5e90c417009563bce093e101578f28108c61eab652f', 291),
    ('patterns/en/P1412.jsonl', 'data/mpararel_reviewed/patterns/en/P1412.jsonl', 'c20c0e6bc99c8fe11a3dfd02dd2bfff25d0f804cfeb31040b6c106ea879043b6', 588),
    ('patterns/en/P159.jsonl', 'data/mpararel_reviewed/patterns/en/P159.jsonl', 'afbfae8e3d166d3d5a75acfbdf0ba2aa39ac734b7bf17acc33ef3ea3c809b40f', 729),
    ('patterns/en/P17.jsonl', 'data/mpararel_reviewed/patterns/en/P17.jsonl', '7a6bb92563d260bc0bb41492860b9ef724e8c6b99482dcb6246f4c9b3e0e2f2b', 197),
    ('patterns/en/P176.jsonl', 'data/mpararel_reviewed/patterns/en/P176.jsonl', '271959ac425adb097bb0c98553a579c7975f42bd860f2efa827eecec0408366f', 799),
    ('patterns/en/P178.jsonl', 'data/mpararel_reviewed/patterns/en/P178.jsonl', 'e7cd3a70fb8667f80e72faa67c06605cfa8ab0210ccfed9f7fb6e712494bfb81', 1074),
    ('patterns/en/P19.jsonl', 'data/mpararel_reviewed/patterns/en/P19.jsonl', '98bf1321c8f720cabee1f8ad042de7d866126da71854852133843610f4f98cf9', 863),
    ('patterns/en/P190.jsonl', 'data/mpararel_reviewed/patterns/en/P190.jsonl', 'f3851780571f25ade15af93fe8e53881df297a49254f0d67215c08a6d35e3180', 276),
    ('patterns/en/P20.jsonl', 'data/mpararel_reviewed/patterns/en/P20.jsonl', '17d776baac2f5029bc2353d7454f05c318520d290c65e724e916628bd1bf67b5', 505),
    ('patterns/en/P264.jsonl', 'data/mpararel_reviewed/patterns/en/P264.jsonl', 'c7749674d9066bac618057c8802fbf5b8c64d31838e67d0471748aed4319564f', 1199),
    ('patterns/en/P27.jsonl', 'data/mpararel_reviewed/patterns/en/P27.jsonl', 'c32453ce89f1732332fe37963018b898c74d747c3e3af42aa35ab4d0da57c88b', 627),
    ('patterns/en/P276.jsonl', 'data/mpararel_reviewed/patterns/en/P276.jsonl', '2aba98df6de1987e73389e3f2370270ff952e32c58072faf08fd35058be8cdaf', 120),
    ('patterns/en/P279.jsonl', 'data/mpararel_reviewed/patterns/en/P279.jsonl', '000096d0ddb8fed031d0ec45cda57381a1c42bde41da3a8bad958b804bb985eb', 267),
    ('patterns/en/P30.jsonl', 'data/mpararel_reviewed/patterns/en/P30.jsonl', '5c8021427c353a3d459412e7a6ecde96119a0338bbc496777a96c07630894d47', 300),
    ('patterns/en/P36.jsonl', 'data/mpararel_reviewed/patterns/en/P36.jsonl', 'e41485a33a0195591bea1161a6655b9beae07aff59e25f3002b3b9bcb910f874', 981),
    ('patterns/en/P361.jsonl', 'data/mpararel_reviewed/patterns/en/P361.jsonl', 'c9a17c56799288c3bc310051f9bd27ff368deaa617c0445cc4370078a9aa41af', 124),
    ('patterns/en/P364.jsonl', 'data/mpararel_reviewed/patterns/en/P364.jsonl', 'b83dac54ad10e9baa8793e4a29ae0019127a419bfa46d7778b9edf12ed7eac72', 435),
    ('patterns/en/P37.jsonl', 'data/mpararel_reviewed/patterns/en/P37.jsonl', '2433642092ba71ee75540f5b88d0a7405d1c8e32ebd1fa43866c5b5211b19599', 791),
    ('patterns/en/P39.jsonl', 'data/mpararel_reviewed/patterns/en/P39.jsonl', '89c8e551a225279d2be6960577a6fdfd3b99ef1aa681b334208a312f4ce421d2', 435),
    ('patterns/en/P407.jsonl', 'data/mpararel_reviewed/patterns/en/P407.jsonl', '53dbb59b72ce11ece51b12025fe6965af87c503d61642b6dbffb40725bf1808c', 1277),
    ('patterns/en/P413.jsonl', 'data/mpararel_reviewed/patterns/en/P413.jsonl', 'fdc2344d769b138d3f717546ca4433ccb15e828f6618e010dd68c863dd162334', 404),
    ('patterns/en/P449.jsonl', 'data/mpararel_reviewed/patterns/en/P449.jsonl', 'a7245d64c8699ee4367ef6cf87e063a05c4c139056822936ee4b0b0144de9063', 699),
    ('patterns/en/P463.jsonl', 'data/mpararel_reviewed/patterns/en/P463.jsonl', '496cef35b8b41f8610b2e430a7a07b691044c23cb5b174995b3b1fc115fd5cbf', 381),
    ('patterns/en/P47.jsonl', 'data/mpararel_reviewed/patterns/en/P47.jsonl', '6780a850116050636276a086a2947dc3b2b12b5d05057c8eabde3e465e239528', 643),
    ('patterns/en/P495.jsonl', 'data/mpararel_reviewed/patterns/en/P495.jsonl', 'e91ff3dfcc6a292de62dba3afd5739e5d79655682afb45a36a7d1d0c598c713e', 1116),
    ('patterns/en/P530.jsonl', 'data/mpararel_reviewed/patterns/en/P530.jsonl', '0723963d2b08be312c964bf6c57ef5176d0e36c1aa26662b89eef5c0396da162', 756),
    ('patterns/en/P740.jsonl', 'data/mpararel_reviewed/patterns/en/P740.jsonl', '9fbeb5e070cb392e5cfadfd846962325a7e403387c72c944677cecb6bfc4bce3', 920),
    ('patterns/en/P937.jsonl', 'data/mpararel_reviewed/patterns/en/P937.jsonl', 'cc3aac15949308a40050c3f3b59c1dd710f0989583f92d44eb23d993358bda77', 328),
    ('tuples/ca/P1001.jsonl', 'data/mpararel_reviewed/tuples/ca/P1001.jsonl', 'd4e9ecf8dba2fb8daedaa7e11c53fccbc86bcea0913b37457a9aaa16591487a8', 58548),
    ('tuples/ca/P101.jsonl', 'data/mpararel_reviewed/tuples/ca/P101.jsonl', '8bdd307422e9b3b0189cbb0b1a2655f2fe6fe68aad05145a14d3e50871e0cf5f', 75275),
    ('tuples/ca/P103.jsonl', 'data/mpararel_reviewed/tuples/ca/P103.jsonl', 'd2e08fe108b8603a72129e058e8bf24c3b41b8850c5b11deb8e749c3c5d0866d', 108911),
    ('tuples/ca/P106.jsonl', 'data/mpararel_reviewed/tuples/ca/P106.jsonl', '120b36c5e9953e7e394be7b5ec0651e9d34bc35a88167125ebf43e64238bec25', 99329),
    ('tuples/ca/P108.jsonl', 'data/mpararel_reviewed/tuples/ca/P108.jsonl', '20f9345c48cd4d123904add3183f348e40546bede16b73261a1942c774d2794d', 38420),
    ('tuples/ca/P127.jsonl', 'data/mpararel_reviewed/tuples/ca/P127.jsonl', '5430472090bef9f263d66323440aa9cf72d8324e522611476e6c6730b7c30da3', 36253),
    ('tuples/ca/P1303.jsonl', 'data/mpararel_reviewed/tuples/ca/P1303.jsonl', '439512d8e131e176ecc5f4ad86a1af852ee8d078f5e16b189b2166fd1dfdd7d7', 105946),
    ('tuples/ca/P131.jsonl', 'data/mpararel_reviewed/tuples/ca/P131.jsonl', '5ac1865a7c3e21581b4b4032f7e5a9a8c72fa12abe71c2eb8806736b10e61154', 34997),
    ('tuples/ca/P136.jsonl', 'data/mpararel_reviewed/tuples/ca/P136.jsonl', '4fc97b91e6e121a971d25663ee4f088d2aa9f77f0455a31f92f9a79e444ec7f5', 76928),
    ('tuples/ca/P1376.jsonl', 'data/mpararel_reviewed/tuples/ca/P1376.jsonl', '0cc5042a8ba106e58b16a58aa2e64c6826a6f19b4154837dfbe8aa7219fdb3fa', 24547),
    ('tuples/ca/P138.jsonl', 'data/mpararel_reviewed/tuples/ca/P138.jsonl', '5b312a505d0789bad2a5d1ba8f61192818344f8dea4c2380a09e482e76a0492c', 43085),
    ('tuples/ca/P140.jsonl', 'data/mpararel_reviewed/tuples/ca/P140.jsonl', 'c4db5b7fa0094a16e0bdbe3c897c77c529eed1b9f89b92fe20ec0dedfc783989', 46938),
    ('tuples/ca/P1412.jsonl', 'data/mpararel_reviewed/tuples/ca/P1412.jsonl', '1dc57e4639c9a76bf841092f8de9e6f08ca8ed1f01efa6f00de7a6a9b97e923b', 105481),
    ('tuples/ca/P159.jsonl', 'data/mpararel_reviewed/tuples/ca/P159.jsonl', '3dbfbbf4716d91cbb5320105b1676654a871ec994d2d0a66c15b07d0a47c10c5', 40975),
    ('tuples/ca/P17.jsonl', 'data/mpararel_reviewed/tuples/ca/P17.jsonl', '1940cf038d3c96da9d2a2b0eb654a60d644d21616285ff6191f3416056f896d9', 47397),
    ('tuples/ca/P176.jsonl', 'data/mpararel_reviewed/tuples/ca/P176.jsonl', '20cf87f0dbe33fd9e8c965e51cb2a682bf1d8c2099ae6cda972bcd352ff9f8ec', 34576),
    ('tuples/ca/P178.jsonl', 'data/mpararel_reviewed/tuples/ca/P178.jsonl', '8cfb285b5174ffe86635d647f52530c944d2e1c6246953cc207a268c827b3632', 39345),
    ('tuples/ca/P19.jsonl', 'data/mpararel_reviewed/tuples/ca/P19.jsonl', '4fc60ef79207f11ec38362c69a42ae6df92eaec87a1e65cd8a41def0112b1ae1', 95441),
    ('tuples/ca/P190.jsonl', 'data/mpararel_reviewed/tuples/ca/P190.jsonl', '27a2b460dc098f3eb8bcc4029739da924ed8f0ce87ca0793a25cbd05d287d4a4', 105898),
    ('tuples/ca/P20.jsonl', 'data/mpararel_reviewed/tuples/ca/P20.jsonl', '29b0f1e9b02eff60a8dea2b7b6c086880f95f6f81f603a663d438e4a1bf149fd', 99460),
    ('tuples/ca/P264.jsonl', 'data/mpararel_reviewed/tuples/ca/P264.jsonl', '2563912f11d1b75c1a1b15c52c00b2f5b9e204e846b29e403777cd433f60bb0c', 34814),
    ('tuples/ca/P27.jsonl', 'data/mpararel_reviewed/tuples/ca/P27.jsonl', '9538f99185311361ae8e81915cf0dd7936256703fd5839ea2fcb47c4b0eb0480', 89011),
    ('tuples/ca/P276.jsonl', 'data/mpararel_reviewed/tuples/ca/P276.jsonl', '951380bcc6cf60f196531c0bc9447652dea2f276c5be308dfee6d3dd88d0f897', 60668),
    ('tuples/ca/P279.jsonl', 'data/mpararel_reviewed/tuples/ca/P279.jsonl', 'fcfe0855e9daf2bec0b1452806c1f219963f16665bd630c41391c4cb897cfccc', 66482),
    ('tuples/ca/P30.jsonl', 'data/mpararel_reviewed/tuples/ca/P30.jsonl', 'db13c634ce3ad185365e1546693d174c8c3499c582b2758010c0102267c83e8c', 36902),
    ('tuples/ca/P31.jsonl', 'data/mpararel_reviewed/tuples/ca/P31.jsonl', '0f51a334bf89624869d0db111dbd1ef43873e3fe5d8a092af236b1007d93cdd2', 33830),
    ('tuples/ca/P36.jsonl', 'data/mpararel_reviewed/tuples/ca/P36.jsonl', '372db9658522ec53cbb185b4a122319fe2d7530eef84b8982afdf4e32494905b', 76841),
    ('tuples/ca/P361.jsonl', 'data/mpararel_reviewed/tuples/ca/P361.jsonl', '59f5b8fa735e7564b09e3eeab5f6332672bae2cfbd3dc14732663d9a64bb0d37', 85409),
    ('tuples/ca/P364.jsonl', 'data/mpararel_reviewed/tuples/ca/P364.jsonl', '3e3dd1ef525f73a4bf1e2ac5618fada0810f6080d9a63ce073a42f07ccecc1f3', 32007),
    ('tuples/ca/P37.jsonl', 'data/mpararel_reviewed/tuples/ca/P37.jsonl', 'eb8a88ec76b12212102c729c1c6877c70068c145b686049d2fa222a8533f098a', 99892),
    ('tuples/ca/P39.jsonl', 'data/mpararel_reviewed/tuples/ca/P39.jsonl', 'f562638def17708df6b459a2d6d82f3fc9e87d8bceb398d3fa0dfede8f4d5ed5', 87368),
    ('tuples/ca/P407.jsonl', 'data/mpararel_reviewed/tuples/ca/P407.jsonl', '178390570b9f45cb61e112e0d690f11cc78b90d89837b4d7389298a551029bf3', 50498),
    ('tuples/ca/P413.jsonl', 'data/mpararel_reviewed/tuples/ca/P413.jsonl', '943c6b3fb29847306d4cd810f94929567de70ce527b7afa5bc52cdb9f5273eb2', 96049),
    ('tuples/ca/P449.jsonl', 'data/mpararel_reviewed/tuples/ca/P449.jsonl', 'a7c11b461731001bbf19530eda8390a2c0bd86fe3a2d54a49e4fb74bfc0d473d', 13956),
    ('tuples/ca/P463.jsonl', 'data/mpararel_reviewed/tuples/ca/P463.jsonl', '2df4b259261a53227d1a1e9a94c1ce2e698e4a9e64356f748d64c4f0fffb2148', 26651),
    ('tuples/ca/P47.jsonl', 'data/mpararel_reviewed/tuples/ca/P47.jsonl', '544be3eaac96e7b8de455789f7336d1079e050ef8f71aa065aead91eff3a6a75', 95973),
    ('tuples/ca/P495.jsonl', 'data/mpararel_reviewed/tuples/ca/P495.jsonl', '517748deea4b2e9850e7fb7c4a623d635d21daa552bc8ddcce5a9aafac0186a1', 32827),
    ('tuples/ca/P527.jsonl', 'data/mpararel_reviewed/tuples/ca/P527.jsonl', 'a9cd925fe766b43de0b84b08a449f3885fa3ebcb1c251545879865cdf0e8ba69', 84534),
    ('tuples/ca/P530.jsonl', 'data/mpararel_reviewed/tuples/ca/P530.jsonl', '4e54a3c66a2d37dafd179cbc16ace5d8df7e35db324cc979299a9168dfe8bfaf', 108595),
    ('tuples/ca/P740.jsonl', 'data/mpararel_reviewed/tuples/ca/P740.jsonl', '1d5973e1dbccaabc59140d6ad0f4ddebbbc5d1bfaf678c6c96fd0fd0f9ea6c87', 29760),
    ('tuples/ca/P937.jsonl', 'data/mpararel_reviewed/tuples/ca/P937.jsonl', '2ff0a89bef642fccd0ef4afd95860b226f7da300b736a58b0068f42a7daa9edb', 106072),
    ('tuples/en/P1001.jsonl', 'data/mpararel_reviewed/tuples/en/P1001.jsonl', 'da98b377861e3c5e189e35acfb7b97a1f42d183edf4d09db6209cb6e88a516d4', 85509),
    ('tuples/en/P101.jsonl', 'data/mpararel_reviewed/tuples/en/P101.jsonl', '811c68f299aa1eeb24751f5a9e02d9339d4ca661523d4ee277f2c3ad833bede7', 81093),
    ('tuples/en/P103.jsonl', 'data/mpararel_reviewed/tuples/en/P103.jsonl', '811b09b052ad763ed2222332490de494b71d0e075cdb1e42eac615877dbfc09d', 110407),
    ('tuples/en/P106.jsonl', 'data/mpararel_reviewed/tuples/en/P106.jsonl', '7b14c2504ec7b28dc8de11e15db20a8cc4fec8d40acd67b049d6edcf84712b3e', 110833),
    ('tuples/en/P108.jsonl', 'data/mpararel_reviewed/tuples/en/P108.jsonl', '4c8fb697428e245ce31b05408afd585b53bc3324e13cc3ac334b359d95ba80a0', 42234),
    ('tuples/en/P127.jsonl', 'data/mpararel_reviewed/tuples/en/P127.jsonl', 'f2741588631ce069103312eb0770401cf98cf0d5ce4ecaa63b9906eec5a2cf32', 78951),
    ('tuples/en/P1303.jsonl', 'data/mpararel_reviewed/tuples/en/P1303.jsonl', 'fdb46e072fe6623304af3c32370a16d0f89af5363b230d801abf0410028f154d', 106514),
    ('tuples/en/P131.jsonl', 'data/mpararel_reviewed/tuples/en/P131.jsonl', 'b2759d5cbec1ab257216d8d178140c694e9f3ca68e6955f88525541494f8fa60', 103949),
    ('tuples/en/P136.jsonl', 'data/mpararel_reviewed/tuples/en/P136.jsonl', 'b4d70e9491549469d41d0776fbc183e44658d46d64bdd65ad847b6775ac88fc5', 103386),
    ('tuples/en/P1376.jsonl', 'data/mpararel_reviewed/tuples/en/P1376.jsonl', 'b1231f32b57212f93c4103e4f7b4bfbbbad9774c4882b3dda75896a66d25b853', 24512),
    ('tuples/en/P138.jsonl', 'data/mpararel_reviewed/tuples/en/P138.jsonl', '77ff66e5d7abe0f669ccc8aa0ff23b0cd04d46f5014759ec7ec02d3bf23de913', 76235),
    ('tuples/en/P140.jsonl', 'data/mpararel_reviewed/tuples/en/P140.jsonl', 'fabe7bf1980d71de0de65b69f29aa0c813ca8c899fc6b91728b4d60ffad61831', 53441),
    ('tuples/en/P1412.jsonl', 'data/mpararel_reviewed/tuples/en/P1412.jsonl', '44c6dc90d36f7b9c7535b21e1c353d031d47ea51f30a612c48ea3c38b09da2ff', 110132),
    ('tuples/en/P159.jsonl', 'data/mpararel_reviewed/tuples/en/P159.jsonl', 'f90cd532b440cecec3d03fde2b850012b997cc7a2a62f36f029946e172eb8052', 113434),
    ('tuples/en/P17.jsonl', 'data/mpararel_reviewed/tuples/en/P17.jsonl', '510669072d0b68353f554bdc2afa40db8064bbae618f9c57a9ddd33d6981c381', 104762),
    ('tuples/en/P176.jsonl', 'data/mpararel_reviewed/tuples/en/P176.jsonl', 'e1963c59c449396fc5429b68e656fa51397f846fa8819a151e17b897350730ce', 110275),
    ('tuples/en/P178.jsonl', 'data/mpararel_reviewed/tuples/en/P178.jsonl', '1c29a3023a7bfcf2e1e94d3d75302c37032e1f64d7843a57d304fb1df82a57f3', 67498),
    ('tuples/en/P19.jsonl', 'data/mpararel_reviewed/tuples/en/P19.jsonl', '3167331f97fe6a4e1e5ca4f4153fa5e4f50f95c3ae3c4293617686063c0f0d60', 107315),
    ('tuples/en/P190.jsonl', 'data/mpararel_reviewed/tuples/en/P190.jsonl', 'f84f3dcd753f2ba2ea92d4f48389f96616db5c06f6d0f11ddbffb37f04bf9af5', 104058),
    ('tuples/en/P20.jsonl', 'data/mpararel_reviewed/tuples/en/P20.jsonl', '54df2ec3d27caca7eba41437bed88a01c1970263279b11dc28b2d21c907debf4', 109107),
    ('tuples/en/P264.jsonl', 'data/mpararel_reviewed/tuples/en/P264.jsonl', 'f96807436db22fa8dababa8c7a390adca3bd047965aafdee8a4b82e81a59f7c0', 48752),
    ('tuples/en/P27.jsonl', 'data/mpararel_reviewed/tuples/en/P27.jsonl', 'e89b585036d1f6a86b76c30402b7980c0ac462bf90428a878860435553799060', 108608),
    ('tuples/en/P276.jsonl', 'data/mpararel_reviewed/tuples/en/P276.jsonl', '1bbcdafae257c5ddadbc9d44958e84b810054696b42e4849b6db8cd239f61614', 114917),
    ('tuples/en/P279.jsonl', 'data/mpararel_reviewed/tuples/en/P279.jsonl', '489d0b146e0f33e358e8b9a65cf5f5757aab2744ceb16c08f1679567b1c5d8ab', 111233),
    ('tuples/en/P30.jsonl', 'data/mpararel_reviewed/tuples/en/P30.jsonl', 'b9c9ba1077312bd800a8f726020ce6ca39defc55ea3c1f9df949fd4a663462a4', 109815),
    ('tuples/en/P31.jsonl', 'data/mpararel_reviewed/tuples/en/P31.jsonl', '934671c33cae760265d3a54cdfd326240add9592ac52813c44242e77c4530e54', 106236),
    ('tuples/en/P36.jsonl', 'data/mpararel_reviewed/tuples/en/P36.jsonl', '0598d7dbd7784bfda1606513f07e31548bfa9f806f25f851541f3e151e936e52', 79920),
    ('tuples/en/P361.jsonl', 'data/mpararel_reviewed/tuples/en/P361.jsonl', 'f8e46e8d36af1d045fa3a47ab7115d2b963612d5302c49fc1567de203d984f75', 105026),
    ('tuples/en/P364.jsonl', 'data/mpararel_reviewed/tuples/en/P364.jsonl', '9120f85862383e3f61efe7ca3b253e057da428fc603c401570dcfaff2f31766f', 96872),
    ('tuples/en/P37.jsonl', 'data/mpararel_reviewed/tuples/en/P37.jsonl', '60fa7c81244a58e47d4d681e76ae4f4d6ceee23267af7851e504079d84fd5b14', 106018),
    ('tuples/en/P39.jsonl', 'data/mpararel_reviewed/tuples/en/P39.jsonl', '3a5904527b5faa5cd1f14020ac8302bec87e131e94363e3a8f078dd7805f75dd', 103247),
    ('tuples/en/P407.jsonl', 'data/mpararel_reviewed/tuples/en/P407.jsonl', 'bc383b9626e6dcbac100f9e116f30fae043261bb4d44aa5b349436208a3a25b3', 98963),
    ('tuples/en/P413.jsonl', 'data/mpararel_reviewed/tuples/en/P413.jsonl', 'a119a40f364abd795ea53d84f6c3d939389ed2cbec9f2df97904b04eddc8c754', 112126),
    ('tuples/en/P449.jsonl', 'data/mpararel_reviewed/tuples/en/P449.jsonl', 'e922074ac9571decf49a328fcf787c98c7641b939a188fb6dc0f946eaee73d46', 99433),
    ('tuples/en/P463.jsonl', 'data/mpararel_reviewed/tuples/en/P463.jsonl', '79781114ccdd4809d430893e9760006ce0a13c1d9363e750598fbc67c6b083b4', 27013),
    ('tuples/en/P47.jsonl', 'data/mpararel_reviewed/tuples/en/P47.jsonl', 'c3b57f6f52ab43b7306cb81325f64ec27ac462a7505275ce5f22668395c296ba', 99276),
    ('tuples/en/P495.jsonl', 'data/mpararel_reviewed/tuples/en/P495.jsonl', 'dacb37467e723d01760624996b23740f1dadd0204547d74041ef098f1322a237', 100713),
    ('tuples/en/P527.jsonl', 'data/mpararel_reviewed/tuples/en/P527.jsonl', '876c43f25630abd47d348d70d8f356275de3e3877e8bee671874ad6ea0b56007', 108329),
    ('tuples/en/P530.jsonl', 'data/mpararel_reviewed/tuples/en/P530.jsonl', '51acce1b54fc760fef414c5ed475e1e4ed5ce40d8609d79a2c9bf8204328d735', 102334),
    ('tuples/en/P740.jsonl', 'data/mpararel_reviewed/tuples/en/P740.jsonl', 'd6d22a484b43bcee51bae7ec733e719100a381b64bd5a80fc770a73dd2c68a9e', 105733),
    ('tuples/en/P937.jsonl', 'data/mpararel_reviewed/tuples/en/P937.jsonl', '67707626a53e754e30d80ea44e3312684443f3ab954258218f54b71754ac0e3d', 108846),
)
_FILES['wikitext2_raw_test'] = (
    ('wiki.test.raw', 'data/wikitext-2-raw/wiki.test.raw', '4f3e427e4aff23acff917a8a51aeae21bf12832256e26914c8fc250dcef4103c', 1290547),
)


_META: dict[str, tuple[str, str, str, str]] = {
    # name: (repo, commit, licence, description)
    "counterfact_easyedit_full": (
        "Jometeorie/KnowledgeSpread",
        "51d7402617c2e52bde0dc11b76e400c3725a181a",
        "Apache-2.0 (stated in the repository README; no LICENSE file). Upstream CounterFact: "
        "ROME, Meng et al. 2022, code released under MIT.",
        "CounterFact in the EasyEdit/MEND schema, all 21,919 cases: train 10,000 / val 1,919 / edit 10,000.",
    ),
    "bmike53_counterfact": (
        "ercong21/MultiKnow",
        "6e3e245bf0a17edaecfb4d71664efc1b5fb67906",
        "none stated in ercong21/MultiKnow (for any of its files); an identical counterfact_test_ca.json "
        "is in shaobo9856/bmike-baseline under the ROME MIT licence (Copyright (c) 2022 Kevin Meng). "
        "Upstream CounterFact: ROME (MIT).",
        "BMIKE-53 CounterFact subset: 1,031 parallel test questions, English paired with each of 51 "
        "languages (counterfact_test_<lang>.json; a few records lack the other language), the same "
        "en-only, 10,000 en train records (cloze), in-context demonstrations and language codes.",
    ),
    "mpararel_ca_en": (
        "coastalcph/mpararel",
        "7153b7bdc86901fbe23d0c2909a4f2d4609b09d9",
        "none stated in the repository. Upstream: ParaRel (yanaiela/pararel) and mLAMA "
        "(norakassner/mlama; its Hugging Face card states cc-by-nc-sa-4.0).",
        "mParaRel (reviewed) relation templates and subject/object tuples for Catalan and English "
        "(upstream data/mpararel_reviewed/{patterns,tuples}/<lang>/P*.jsonl).",
    ),
    "globalvoices_en_ca": (
        "Softcatala/parallel-catalan-corpus",
        "3d45820dd1f9b9ff3d7c453ce8cb429b6f9a8640",
        "Creative Commons Attribution (CC BY), Global Voices (ca.globalvoices.org), per the "
        "repository's eng-cat/README.md; the repository has no LICENSE file.",
        "Global Voices English-Catalan parallel sentences, 21,342 line-aligned pairs.",
    ),
    "wikitext2_raw_test": (
        "Tylogi/TyloQuant",
        "7989d038b13ca737da11a95fb90e77ae059f33c0",
        "CC BY-SA 3.0 and GFDL (WikiText, Merity et al. 2016); the hosting repository is Apache-2.0, "
        "which does not replace the upstream licences.",
        "WikiText-2 raw, test split (English Wikipedia, 2,891 lines).",
    ),
    "catalan_cc0_sentences": (
        "TeMU-BSC/catalan_CC0_sentences",
        "30f19bbfaca7b8abdd195c4687c1a992bde4f63f",
        "CC0-1.0",
        "Catalan CC0 sentences: 49,990 machine-translated Wikipedia sentences and 18,550 "
        "Wikidata-template sentences.",
    ),
}

#: Every registered data set, by name (insertion order is the default processing order).
REGISTRY: dict[str, DataSource] = {
    name: DataSource(
        name=name,
        repo=repo,
        commit=commit,
        licence=licence,
        description=description,
        files=tuple(SourceFile(*row) for row in _FILES[name]),
    )
    for name, (repo, commit, licence, description) in _META.items()
}


def get_source(name: str) -> DataSource:
    """The registered data set ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(REGISTRY)}") from None


def dataset_names() -> list[str]:
    """Names of all registered data sets."""
    return list(REGISTRY)
